package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/app"
)

// Config is everything anomalyd is started with. Every field has a flag and an
// environment variable; the flag wins.
type Config struct {
	Addr     string // HTTP listen address
	DataDir  string // embedded NATS storage and, by default, the keys file
	KeysFile string
	// SnapshotFile keeps the read models between runs (see
	// projections.SaveSnapshot); "off" keeps none.
	SnapshotFile string
	// SnapshotEvery is the least number of events between two snapshots
	// written while the service runs (see projections.PeriodicSnapshots); 0
	// writes one only at a clean shutdown.
	SnapshotEvery uint64
	Store         string // event-store backend: jetstream or esdb
	ESDBURL       string // EventStoreDB connection string, with --store esdb
	NATSURL       string // external NATS; empty runs NATS embedded
	NATSListen    string // client address of the embedded NATS; "off" for none
	NATSSync      bool   // fsync every JetStream write before acknowledging it
	// EffectsDuplicateWindow is how long JetStream remembers effect ids to drop
	// a re-published effect; the publisher's own checkpoint makes re-publishing
	// rare, the window is the second line of defence.
	EffectsDuplicateWindow time.Duration
	// Bearer JWTs: an HS256 secret (from a file or the environment, never a
	// flag: flags show in the process list), a JWKS URL for RS256/ES256, and
	// optional issuer and audience checks.
	JWTSecretFile  string
	JWTSecret      string
	JWTJWKSURL     string
	JWTIssuer      string
	JWTAudience    string
	JWTTenantClaim string
	ReadyMaxLag    uint64  // readiness: how far behind the store a projection may be
	CommandCache   int     // anomalies whose state the command side keeps between commands; 0: none
	RateLimit      float64 // requests per second per tenant; 0: off
	RateBurst      int
	LogFormat      string // text or json
	LogLevel       string // debug, info, warn, error
}

// DefaultSnapshotEvery is the least number of events between two snapshots of
// the read models written while the service runs.
const DefaultSnapshotEvery = 100_000

type setting struct {
	name, env, def, usage string
	target                *string
}

func (c *Config) settings() []setting {
	return []setting{
		{"addr", "ANOMALYD_ADDR", "127.0.0.1:8080", "HTTP listen address", &c.Addr},
		{"data-dir", "ANOMALYD_DATA_DIR", "./data", "directory for the embedded NATS JetStream files and the keys file", &c.DataDir},
		{"keys-file", "ANOMALYD_KEYS_FILE", "", "API keys file (default <data-dir>/keys.json)", &c.KeysFile},
		{"snapshot-file", "ANOMALYD_SNAPSHOT_FILE", "", "file where the read models are kept, at a clean shutdown and while running (--snapshot-every), so that the next start replays only the events after them, once the log is checked to hold the event they were taken after; \"off\" keeps none and replays the whole log (default <data-dir>/read-models.snapshot)", &c.SnapshotFile},
		{"store", "ANOMALYD_STORE", "jetstream", "event-store backend: jetstream or esdb (NATS still carries the effects)", &c.Store},
		{"esdb-url", "ANOMALYD_ESDB_URL", "", "EventStoreDB/KurrentDB connection string for --store esdb, e.g. esdb://localhost:2113?tls=false", &c.ESDBURL},
		{"nats-url", "ANOMALYD_NATS_URL", "", "URL of an external NATS cluster with JetStream; empty runs NATS embedded", &c.NATSURL},
		{"nats-listen", "ANOMALYD_NATS_LISTEN", "127.0.0.1:4222", "client address of the embedded NATS, for effect subscribers; \"off\" opens no port", &c.NATSListen},
		{"jwt-hs256-secret-file", "ANOMALYD_JWT_HS256_SECRET_FILE", "", "file holding the HS256 secret for bearer JWTs (at least 32 bytes; ANOMALYD_JWT_HS256_SECRET may hold it instead)", &c.JWTSecretFile},
		{"jwt-jwks-url", "ANOMALYD_JWT_JWKS_URL", "", "JWKS URL of the RS256/ES256 keys for bearer JWTs", &c.JWTJWKSURL},
		{"jwt-issuer", "ANOMALYD_JWT_ISSUER", "", "required iss of bearer JWTs (empty: not checked)", &c.JWTIssuer},
		{"jwt-audience", "ANOMALYD_JWT_AUDIENCE", "", "required aud of bearer JWTs (empty: not checked)", &c.JWTAudience},
		{"jwt-tenant-claim", "ANOMALYD_JWT_TENANT_CLAIM", "tenant_id", "claim of bearer JWTs that names the tenant", &c.JWTTenantClaim},
		{"log-format", "ANOMALYD_LOG_FORMAT", "text", "log format: text or json", &c.LogFormat},
		{"log-level", "ANOMALYD_LOG_LEVEL", "info", "log level: debug, info, warn, error", &c.LogLevel},
	}
}

// ParseConfig reads flags from args, falling back to the environment and then to
// the defaults. It returns an error naming the setting that is invalid.
func ParseConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("anomalyd", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		fs.StringVar(s.target, s.name, def, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	// A typed setting's environment value is checked only when no flag
	// replaces it, so that the flag always wins, even over a bad value.
	syncDef, syncErr := envBool(getenv, "ANOMALYD_NATS_SYNC_ALWAYS")
	fs.BoolVar(&c.NATSSync, "nats-sync-always", syncDef,
		"embedded NATS: fsync every write before acknowledging it, so an acknowledged command survives power loss (env ANOMALYD_NATS_SYNC_ALWAYS)")
	dupDef, dupErr := envDuration(getenv, "ANOMALYD_EFFECTS_DUPLICATE_WINDOW", 2*time.Minute)
	fs.DurationVar(&c.EffectsDuplicateWindow, "effects-duplicate-window", dupDef,
		"how long the effects stream drops a re-published effect id (env ANOMALYD_EFFECTS_DUPLICATE_WINDOW)")
	lagDef, lagErr := envFloat(getenv, "ANOMALYD_READY_MAX_LAG", 1000)
	var lag float64
	fs.Float64Var(&lag, "ready-max-lag", lagDef, "GET /readyz fails while a projection is more than this many store positions behind (env ANOMALYD_READY_MAX_LAG)")
	cacheDef, cacheErr := envFloat(getenv, "ANOMALYD_COMMAND_CACHE", app.DefaultCacheSize)
	var cache float64
	fs.Float64Var(&cache, "command-cache", cacheDef, "anomalies not yet resolved or dismissed whose state the command side keeps between commands, so that a command on one decides without reading its stream, and at most that many KiB of them; 0 reads and checks every anomaly's stream before every command (env ANOMALYD_COMMAND_CACHE)")
	everyDef, everyErr := envFloat(getenv, "ANOMALYD_SNAPSHOT_EVERY", DefaultSnapshotEvery)
	var every float64
	fs.Float64Var(&every, "snapshot-every", everyDef, "while running, keep a snapshot of the read models in --snapshot-file every this many events at least, and at least every half as many events as the snapshot has lines, so that a start after a crash replays only the events since; 0 keeps one only at a clean shutdown (env ANOMALYD_SNAPSHOT_EVERY)")
	rateDef, rateErr := envFloat(getenv, "ANOMALYD_RATE_LIMIT", 2000)
	fs.Float64Var(&c.RateLimit, "rate-limit", rateDef, "requests per second each tenant may make, sustained; 0 turns the limit off (env ANOMALYD_RATE_LIMIT)")
	burstDef, burstErr := envFloat(getenv, "ANOMALYD_RATE_BURST", 4000)
	var burst float64
	fs.Float64Var(&burst, "rate-burst", burstDef, "requests a tenant may make at once above its rate (env ANOMALYD_RATE_BURST)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.RateBurst = int(burst)
	var err error
	if c.ReadyMaxLag, err = wholeNumber("ready-max-lag", lag, maxUint64Float, "positions"); err != nil {
		return c, err
	}
	n, err := wholeNumber("command-cache", cache, math.MaxInt32, "anomalies")
	if err != nil {
		return c, err
	}
	c.CommandCache = int(n)
	if c.SnapshotEvery, err = wholeNumber("snapshot-every", every, math.MaxInt64, "events"); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, env := range []struct {
		flag string
		err  error
	}{
		{"nats-sync-always", syncErr}, {"effects-duplicate-window", dupErr}, {"ready-max-lag", lagErr},
		{"command-cache", cacheErr}, {"snapshot-every", everyErr}, {"rate-limit", rateErr}, {"rate-burst", burstErr},
	} {
		if env.err != nil && !set[env.flag] {
			return c, env.err
		}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.KeysFile == "" {
		c.KeysFile = filepath.Join(c.DataDir, "keys.json")
	}
	switch c.SnapshotFile {
	case "":
		c.SnapshotFile = filepath.Join(c.DataDir, "read-models.snapshot")
	case "off":
		c.SnapshotFile = ""
	}
	c.JWTSecret = getenv("ANOMALYD_JWT_HS256_SECRET")
	if c.JWTSecretFile != "" {
		if c.JWTSecret != "" {
			return c, errors.New("--jwt-hs256-secret-file and ANOMALYD_JWT_HS256_SECRET are both set; keep one")
		}
		b, err := os.ReadFile(c.JWTSecretFile)
		if err != nil {
			return c, fmt.Errorf("--jwt-hs256-secret-file: %v", err)
		}
		c.JWTSecret = strings.TrimRight(string(b), "\r\n")
	}
	return c, c.validate()
}

// maxUint64Float is the largest float64 that converts to a uint64: MaxUint64
// itself rounds up to 2^64, one past it.
var maxUint64Float = math.Nextafter(math.MaxUint64, 0)

// wholeNumber returns v, the value of --flag, as a whole number of units from 0
// to max, or an error that says so.
func wholeNumber(flag string, v, max float64, units string) (uint64, error) {
	if v < 0 || v > max || v != math.Trunc(v) {
		return 0, fmt.Errorf("--%s %v: want a whole number of %s, 0 or more", flag, v, units)
	}
	return uint64(v), nil
}

func envFloat(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return def, fmt.Errorf("%s=%q: want a number", name, v)
	}
	return f, nil
}

func envDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: want a duration such as 2m or 500ms", name, v)
	}
	return d, nil
}

func envBool(getenv func(string) string, name string) (bool, error) {
	v := getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: %v", c.Addr, err)
	}
	switch c.Store {
	case "jetstream":
		if c.ESDBURL != "" {
			return fmt.Errorf("--esdb-url is set but --store is jetstream; add --store esdb")
		}
	case "esdb":
		if c.ESDBURL == "" {
			return fmt.Errorf("--store esdb needs --esdb-url, e.g. esdb://localhost:2113?tls=false")
		}
	default:
		return fmt.Errorf("--store %q: want jetstream or esdb", c.Store)
	}
	if c.DataDir == "" && c.NATSURL == "" {
		return errors.New("--data-dir must not be empty when NATS runs embedded")
	}
	if c.NATSListen != "off" {
		if _, _, err := c.natsListen(); err != nil {
			return fmt.Errorf("--nats-listen %q: %v (or \"off\")", c.NATSListen, err)
		}
	}
	if c.EffectsDuplicateWindow < 100*time.Millisecond {
		return fmt.Errorf("--effects-duplicate-window %s: must be at least 100ms", c.EffectsDuplicateWindow)
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		return fmt.Errorf("--rate-limit %v: want 0 (off) or a positive number", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		return fmt.Errorf("--rate-burst %d: want at least 1", c.RateBurst)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

func (c Config) natsListen() (string, int, error) {
	host, port, err := net.SplitHostPort(c.NATSListen)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return host, p, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}
