package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"runtime"
	"time"
)

// Config is what one benchmark run is started with; every field has a flag.
type Config struct {
	// Target is the base URL of a running anomalyd; empty starts one.
	Target string
	Key    string // API key for Target
	Tenant string // tenant of Key
	// NATSURL is the client URL of Target's NATS, for the effect subscription and
	// the raw ceiling; with a started anomalyd it is found in its log.
	NATSURL string
	// Anomalyd is the anomalyd binary to start; empty builds ./cmd/anomalyd.
	Anomalyd string
	// DataDir is where the started anomalyd keeps its data, kept after the
	// run; empty uses a temporary directory, removed at the end.
	DataDir string

	Anomalies int
	Agents    int // 0: one agent per anomaly
	Tenants   int
	Clients   int
	Rate      float64 // resolves per second, 0: as fast as possible
	// Prefill is how many anomalies are reported and resolved, unmeasured,
	// before the measured phases, so that those run on a store that already
	// holds them.
	Prefill int
	// ClientProcs is GOMAXPROCS while this process is the HTTP client: the
	// load runs on the machine it measures, and an idle P's thread spinning
	// for work takes CPU from the server.
	ClientProcs int

	MaxDuration    time.Duration
	EffectWait     time.Duration
	RequestTimeout time.Duration

	Raw     bool
	RawSize int
	Restart bool
	JSON    bool
}

// defaultConfig returns the settings of a run without flags.
func defaultConfig() Config {
	return Config{
		Anomalies: 10000, Tenants: 4, Clients: 64, ClientProcs: defaultClientProcs(),
		MaxDuration: 5 * time.Minute, EffectWait: 30 * time.Second, RequestTimeout: 30 * time.Second,
		Raw: true, RawSize: 600,
	}
}

// defaultClientProcs is a quarter of the CPUs, at least one: one CPU drives
// about 19,000 requests a second here, twice what two cores of anomalyd serve.
func defaultClientProcs() int { return max(1, runtime.NumCPU()/4) }

const usageHead = `anomalybench measures anomalyd under load over its HTTP API.

By default it builds ./cmd/anomalyd (run it from the module root, or pass
--anomalyd), creates API keys for --tenants tenants, and starts the binary on a
fresh temporary data directory with loopback ports and no rate limit. It then:

  prefill-report, prefill-resolve
                  with --prefill N: reports and resolves N anomalies on agents
                  of their own, unpaced, and waits for their effects, so that
                  the phases below run on a store that already holds them (a
                  running service's log is not empty, and its heap and indexes
                  grow with it)
  report          reports --anomalies high-severity anomalies with --clients clients
  resolve         resolves each of them (false_positive or accepted_risk, which
                  restore the agent), paced by --rate when it is set
  raw-publish     publishes as many ~--raw-size byte messages to a separate
                  JetStream stream, one new subject each, with the expected
                  last subject sequence 0 and a Nats-Msg-Id, as a report appends
  raw-read-write  reads each subject's last message and publishes after it with
                  its sequence expected, as a resolve loads and appends
  in-process-report, in-process-resolve
                  reports and resolves --anomalies anomalies with anomalyd's
                  command service in this process, without HTTP, on the same
                  server and store settings as the raw phases
  restart         with --restart: stops anomalyd and starts it again on the log
                  the load left, and times the start until the API listens
                  (the read model has replayed the log) and until /readyz
                  answers 200 (the effects publisher has folded it too)

and measures, for every agent.suspended and agent.restored effect, the delay
from the 200/201 that caused it to its arrival on maip.effects.>. With
--agents 0 (the default) every anomaly has its own agent, so every report and
every resolve causes exactly one effect.

With --target it loads a running anomalyd instead, as one tenant (--key,
--tenant); --nats names that server's NATS for the effects and the raw ceiling
(stream ANOMALYBENCH_RAW, deleted afterwards). Without --nats the effects are
not measured and the raw ceiling runs on an embedded JetStream.

The report (a table, or --json) gives per phase the operations completed,
succeeded and failed (failures by HTTP status or transport error), the
duration, successful operations per second, and latency percentiles from the
sorted samples (send to response read). With --rate, the resolves are also
measured from each one's due time, so that a request that had to wait for a
free client counts that wait too (without it, a stalled server would slow the
clients down and hide its own delay), and the report says how many were sent
over 1 ms late. While it is the HTTP client, this process runs on
--client-procs CPUs (GOMAXPROCS), so that it leaves the rest of the machine to
the server; the raw and in-process phases, where it is the server, run on all
of them. "where the time goes" puts the client's mean latency beside the
server's (mean handler time, from its /metrics), the CPU seconds of the server
(its /metrics) and of this process, CPU per operation and cores busy. An
effect's delay is its arrival on a core NATS subscription minus the moment the
response to the command that caused it was read; "early" effects arrived
before that and count as 0 ms; effects/s is their pace from the first arrival
to the last. The resolves start once the reports' effects have arrived (or
--effect-wait passed), so that the resolves' effects do not queue behind them.

Every phase stops at its count or at --max-duration, whichever comes first.
The exit status is 1 when a run was cut short, had errors or missed effects.

Flags:
`

// parseFlags reads the command line. It returns flag.ErrHelp after printing
// the usage for --help, and an error naming the flag that is invalid.
func parseFlags(args []string, out io.Writer) (Config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("anomalybench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Target, "target", "", "base URL of a running anomalyd, e.g. http://127.0.0.1:8080 (default: start one)")
	fs.StringVar(&c.Key, "key", "", "API key for --target, with scopes anomalies:write and anomalies:resolve")
	fs.StringVar(&c.Tenant, "tenant", "", "tenant of --key, with --target")
	fs.StringVar(&c.NATSURL, "nats", "", "NATS URL of --target's server, for effects and the raw ceiling (e.g. nats://127.0.0.1:4222)")
	fs.StringVar(&c.Anomalyd, "anomalyd", "", "anomalyd binary to start (default: go build ./cmd/anomalyd from the module root in the working directory)")
	fs.StringVar(&c.DataDir, "data-dir", "", "data directory of the started anomalyd, which must not exist yet, kept after the run (default: a temporary one, removed)")
	fs.IntVar(&c.Anomalies, "anomalies", c.Anomalies, "anomalies to report and then resolve; also the message count of the raw phases")
	fs.IntVar(&c.Prefill, "prefill", c.Prefill, "anomalies to report and resolve, unmeasured, before the measured phases, so that those run on a store that already holds them")
	fs.IntVar(&c.Agents, "agents", c.Agents, "distinct agents the anomalies are spread over; 0 gives each anomaly its own agent, so that every resolve causes one agent.restored effect")
	fs.IntVar(&c.Tenants, "tenants", c.Tenants, "tenants the agents are spread over, each with its own API key (one tenant with --target)")
	fs.IntVar(&c.Clients, "clients", c.Clients, "concurrent HTTP clients (keep-alive connections), and concurrent publishers of the raw phases")
	fs.IntVar(&c.ClientProcs, "client-procs", c.ClientProcs, "GOMAXPROCS of this process during the HTTP phases (the raw and in-process phases use all CPUs)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "resolves per second, spread over the clients; 0 sends as fast as the clients can")
	fs.DurationVar(&c.MaxDuration, "max-duration", c.MaxDuration, "wall-clock cap on the whole run, build and start-up included")
	fs.DurationVar(&c.EffectWait, "effect-wait", c.EffectWait, "after the resolves, how long to wait for missing effects without one arriving")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "timeout of one HTTP request or one raw publish")
	fs.BoolVar(&c.Raw, "raw", c.Raw, "run the raw JetStream ceiling phases; --raw=false skips them")
	fs.IntVar(&c.RawSize, "raw-size", c.RawSize, "payload bytes of a raw message (a stored anomaly.reported event is about this size)")
	fs.BoolVar(&c.Restart, "restart", c.Restart, "after the load, restart the started anomalyd on its log and time the start-up (not with --target)")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print the report as JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	switch {
	case c.Anomalies < 1:
		return fmt.Errorf("--anomalies %d: want at least 1", c.Anomalies)
	case c.Prefill < 0:
		return fmt.Errorf("--prefill %d: want 0 (none) or more", c.Prefill)
	case c.Agents < 0:
		return fmt.Errorf("--agents %d: want 0 (one per anomaly) or more", c.Agents)
	case c.Clients < 1:
		return fmt.Errorf("--clients %d: want at least 1", c.Clients)
	case c.ClientProcs < 1:
		return fmt.Errorf("--client-procs %d: want at least 1", c.ClientProcs)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("--rate %v: want 0 (unpaced) or a positive number", c.Rate)
	case c.MaxDuration <= 0:
		return fmt.Errorf("--max-duration %s: want a positive duration", c.MaxDuration)
	case c.EffectWait <= 0:
		return fmt.Errorf("--effect-wait %s: want a positive duration", c.EffectWait)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("--request-timeout %s: want a positive duration", c.RequestTimeout)
	case c.RawSize < 1 || c.RawSize > 1<<20:
		return fmt.Errorf("--raw-size %d: want 1 to 1048576 bytes", c.RawSize)
	}
	if c.Target == "" {
		if c.Key != "" || c.Tenant != "" || c.NATSURL != "" {
			return errors.New("--key, --tenant and --nats go with --target")
		}
		if c.Tenants < 1 || c.Tenants > 1000 {
			return fmt.Errorf("--tenants %d: want 1 to 1000", c.Tenants)
		}
		if c.DataDir != "" {
			if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("--data-dir %s: want a directory that does not exist yet", c.DataDir)
			}
		}
		return nil
	}
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want a base URL such as http://127.0.0.1:8080", c.Target)
	}
	if c.Key == "" || c.Tenant == "" {
		return errors.New("--target needs --key and --tenant")
	}
	if c.Anomalyd != "" {
		return errors.New("--anomalyd starts a server; it does not go with --target")
	}
	if c.Restart || c.DataDir != "" {
		return errors.New("--restart and --data-dir are for a server anomalybench starts; they do not go with --target")
	}
	c.Tenants = 1
	return nil
}

// agents returns how many distinct agents the run uses.
func (c Config) agents() int { return c.agentsFor(c.Anomalies) }

// agentsFor returns how many distinct agents n anomalies are spread over.
func (c Config) agentsFor(n int) int {
	if c.Agents == 0 || c.Agents > n {
		return n
	}
	return c.Agents
}
