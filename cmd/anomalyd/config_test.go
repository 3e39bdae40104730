package main_test

import (
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/app"
	main "github.com/anomalyd/anomalyd/cmd/anomalyd"
)

// fakeEnv is a getenv function backed by a map, so that the tests never see the
// environment of the machine they run on.
func fakeEnv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// parseConfig parses args and env and fails the test when that is refused.
func parseConfig(t *testing.T, args []string, env map[string]string) main.Config {
	t.Helper()
	c, err := main.ParseConfig(args, fakeEnv(env), io.Discard)
	if err != nil {
		t.Fatalf("ParseConfig(%q, %v): %v", args, env, err)
	}
	return c
}

func TestConfigDefaults(t *testing.T) {
	got := parseConfig(t, nil, nil)
	want := main.Config{
		Addr:                   "127.0.0.1:8080",
		DataDir:                "./data",
		KeysFile:               filepath.Join("data", "keys.json"),
		SnapshotFile:           filepath.Join("data", "read-models.snapshot"),
		SnapshotEvery:          main.DefaultSnapshotEvery,
		Store:                  "jetstream",
		NATSURL:                "",
		NATSListen:             "127.0.0.1:4222",
		NATSSync:               false,
		EffectsDuplicateWindow: 2 * time.Minute,
		JWTTenantClaim:         "tenant_id",
		ReadyMaxLag:            1000,
		CommandCache:           app.DefaultCacheSize,
		RateLimit:              2000,
		RateBurst:              4000,
		LogFormat:              "text",
		LogLevel:               "info",
	}
	if got != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

// configField reads one setting of a Config as text, so that one table can
// cover settings of every type.
type configField func(main.Config) string

var (
	addrField       configField = func(c main.Config) string { return c.Addr }
	dataDirField    configField = func(c main.Config) string { return c.DataDir }
	keysFileField   configField = func(c main.Config) string { return c.KeysFile }
	snapshotField   configField = func(c main.Config) string { return c.SnapshotFile }
	natsURLField    configField = func(c main.Config) string { return c.NATSURL }
	natsListenField configField = func(c main.Config) string { return c.NATSListen }
	logFormatField  configField = func(c main.Config) string { return c.LogFormat }
	logLevelField   configField = func(c main.Config) string { return c.LogLevel }
	natsSyncField   configField = func(c main.Config) string {
		if c.NATSSync {
			return "true"
		}
		return "false"
	}
	dupWindowField configField = func(c main.Config) string { return c.EffectsDuplicateWindow.String() }
	cacheField     configField = func(c main.Config) string { return strconv.Itoa(c.CommandCache) }
	everyField     configField = func(c main.Config) string { return strconv.FormatUint(c.SnapshotEvery, 10) }
)

func TestConfigEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		field configField
		want  string
	}{
		{"AddrFromEnvironment", map[string]string{"ANOMALYD_ADDR": "0.0.0.0:9000"}, addrField, "0.0.0.0:9000"},
		{"DataDirFromEnvironment", map[string]string{"ANOMALYD_DATA_DIR": "/var/lib/anomalyd"}, dataDirField, "/var/lib/anomalyd"},
		{"KeysFileFollowsDataDirFromEnvironment", map[string]string{"ANOMALYD_DATA_DIR": "/var/lib/anomalyd"}, keysFileField, filepath.Join("/var/lib/anomalyd", "keys.json")},
		{"KeysFileFromEnvironment", map[string]string{"ANOMALYD_KEYS_FILE": "/etc/anomalyd/keys.json"}, keysFileField, "/etc/anomalyd/keys.json"},
		{"KeysFileFromEnvironmentBeatsDataDir", map[string]string{"ANOMALYD_DATA_DIR": "/var/lib/anomalyd", "ANOMALYD_KEYS_FILE": "/etc/anomalyd/keys.json"}, keysFileField, "/etc/anomalyd/keys.json"},
		{"SnapshotFileFollowsDataDirFromEnvironment", map[string]string{"ANOMALYD_DATA_DIR": "/var/lib/anomalyd"}, snapshotField, filepath.Join("/var/lib/anomalyd", "read-models.snapshot")},
		{"SnapshotFileFromEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_FILE": "/cache/anomalyd.snapshot"}, snapshotField, "/cache/anomalyd.snapshot"},
		{"SnapshotFileOffFromEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_FILE": "off"}, snapshotField, ""},
		{"NATSURLFromEnvironment", map[string]string{"ANOMALYD_NATS_URL": "nats://nats:4222"}, natsURLField, "nats://nats:4222"},
		{"NATSListenFromEnvironment", map[string]string{"ANOMALYD_NATS_LISTEN": "0.0.0.0:4333"}, natsListenField, "0.0.0.0:4333"},
		{"NATSListenOffFromEnvironment", map[string]string{"ANOMALYD_NATS_LISTEN": "off"}, natsListenField, "off"},
		{"LogFormatFromEnvironment", map[string]string{"ANOMALYD_LOG_FORMAT": "json"}, logFormatField, "json"},
		{"LogLevelFromEnvironment", map[string]string{"ANOMALYD_LOG_LEVEL": "debug"}, logLevelField, "debug"},
		{"NATSSyncFromEnvironment", map[string]string{"ANOMALYD_NATS_SYNC_ALWAYS": "true"}, natsSyncField, "true"},
		{"NATSSyncFromEnvironmentAsOne", map[string]string{"ANOMALYD_NATS_SYNC_ALWAYS": "1"}, natsSyncField, "true"},
		{"CommandCacheOffFromEnvironment", map[string]string{"ANOMALYD_COMMAND_CACHE": "0"}, cacheField, "0"},
		{"SnapshotEveryFromEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_EVERY": "250000"}, everyField, "250000"},
		{"SnapshotEveryOffFromEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_EVERY": "0"}, everyField, "0"},
		{"DuplicateWindowFromEnvironment", map[string]string{"ANOMALYD_EFFECTS_DUPLICATE_WINDOW": "10m"}, dupWindowField, "10m0s"},
		{"EmptyDataDirAllowedWithExternalNATS", map[string]string{"ANOMALYD_DATA_DIR": "", "ANOMALYD_NATS_URL": "nats://nats:4222"}, natsURLField, "nats://nats:4222"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseConfig(t, nil, tc.env)
			if got := tc.field(c); got != tc.want {
				t.Errorf("got %q, want %q (config %+v)", got, tc.want, c)
			}
		})
	}
}

func TestConfigFlags(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		field configField
		want  string
	}{
		{"AddrFlagBeatsEnvironment", map[string]string{"ANOMALYD_ADDR": "0.0.0.0:9000"}, []string{"--addr", "127.0.0.1:9001"}, addrField, "127.0.0.1:9001"},
		{"DataDirFlagBeatsEnvironment", map[string]string{"ANOMALYD_DATA_DIR": "/env"}, []string{"--data-dir", "/flag"}, dataDirField, "/flag"},
		{"KeysFileFollowsDataDirFlag", map[string]string{"ANOMALYD_DATA_DIR": "/env"}, []string{"--data-dir", "/flag"}, keysFileField, filepath.Join("/flag", "keys.json")},
		{"KeysFileFlagBeatsEnvironment", map[string]string{"ANOMALYD_KEYS_FILE": "/env/keys.json"}, []string{"--keys-file", "/flag/keys.json"}, keysFileField, "/flag/keys.json"},
		{"SnapshotFileFollowsDataDirFlag", map[string]string{"ANOMALYD_DATA_DIR": "/env"}, []string{"--data-dir", "/flag"}, snapshotField, filepath.Join("/flag", "read-models.snapshot")},
		{"SnapshotFileOffFlagBeatsEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_FILE": "/env/snap"}, []string{"--snapshot-file", "off"}, snapshotField, ""},
		{"SnapshotEveryFlagBeatsEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_EVERY": "often"}, []string{"--snapshot-every", "5000"}, everyField, "5000"},
		{"NATSURLFlagBeatsEnvironment", map[string]string{"ANOMALYD_NATS_URL": "nats://env:4222"}, []string{"--nats-url", "nats://flag:4222"}, natsURLField, "nats://flag:4222"},
		{"NATSListenFlagBeatsEnvironment", map[string]string{"ANOMALYD_NATS_LISTEN": "0.0.0.0:4333"}, []string{"--nats-listen", "127.0.0.1:4444"}, natsListenField, "127.0.0.1:4444"},
		{"NATSListenOffAccepted", nil, []string{"--nats-listen", "off"}, natsListenField, "off"},
		{"LogFormatFlagBeatsEnvironment", map[string]string{"ANOMALYD_LOG_FORMAT": "json"}, []string{"--log-format", "text"}, logFormatField, "text"},
		{"LogLevelFlagBeatsEnvironment", map[string]string{"ANOMALYD_LOG_LEVEL": "debug"}, []string{"--log-level", "error"}, logLevelField, "error"},
		{"NATSSyncFlagBeatsEnvironment", map[string]string{"ANOMALYD_NATS_SYNC_ALWAYS": "true"}, []string{"--nats-sync-always=false"}, natsSyncField, "false"},
		{"NATSSyncFlagWithoutValue", nil, []string{"--nats-sync-always"}, natsSyncField, "true"},
		{"DuplicateWindowFlagBeatsEnvironment", map[string]string{"ANOMALYD_EFFECTS_DUPLICATE_WINDOW": "10m"}, []string{"--effects-duplicate-window", "30s"}, dupWindowField, "30s"},
		{"SingleDashFlagAccepted", nil, []string{"-addr", "127.0.0.1:9002"}, addrField, "127.0.0.1:9002"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseConfig(t, tc.args, tc.env)
			if got := tc.field(c); got != tc.want {
				t.Errorf("got %q, want %q (config %+v)", got, tc.want, c)
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // the setting the error must name
	}{
		{"RefusedAddrWithoutPort", nil, []string{"--addr", "localhost"}, "--addr"},
		{"RefusedAddrFromEnvironment", map[string]string{"ANOMALYD_ADDR": "localhost"}, nil, "--addr"},
		{"RefusedUnknownStore", nil, []string{"--store", "postgres"}, "--store"},
		{"RefusedUnknownStoreFromEnvironment", map[string]string{"ANOMALYD_STORE": "eventstoredb"}, nil, "--store"},
		{"RefusedEmptyDataDirWithEmbeddedNATS", nil, []string{"--data-dir", ""}, "--data-dir"},
		{"RefusedUnknownLogFormat", nil, []string{"--log-format", "xml"}, "--log-format"},
		{"RefusedUnknownLogFormatFromEnvironment", map[string]string{"ANOMALYD_LOG_FORMAT": "logfmt"}, nil, "--log-format"},
		{"RefusedUnknownLogLevel", nil, []string{"--log-level", "verbose"}, "--log-level"},
		{"RefusedUnknownLogLevelFromEnvironment", map[string]string{"ANOMALYD_LOG_LEVEL": "trace"}, nil, "--log-level"},
		{"RefusedNATSListenWithoutPort", nil, []string{"--nats-listen", "127.0.0.1"}, "--nats-listen"},
		{"RefusedNATSListenPortOutOfRange", nil, []string{"--nats-listen", "127.0.0.1:70000"}, "--nats-listen"},
		{"RefusedNATSListenPortNotANumber", nil, []string{"--nats-listen", "127.0.0.1:nats"}, "--nats-listen"},
		{"RefusedNATSListenOffInCapitals", nil, []string{"--nats-listen", "OFF"}, "--nats-listen"},
		{"RefusedNATSListenFromEnvironment", map[string]string{"ANOMALYD_NATS_LISTEN": "none"}, nil, "--nats-listen"},
		{"RefusedDuplicateWindowTooShort", nil, []string{"--effects-duplicate-window", "10ms"}, "--effects-duplicate-window"},
		{"RefusedDuplicateWindowNegative", nil, []string{"--effects-duplicate-window", "-1m"}, "--effects-duplicate-window"},
		// The flag package words this error itself, with a single dash.
		{"RefusedDuplicateWindowNotADuration", nil, []string{"--effects-duplicate-window", "soon"}, "effects-duplicate-window"},
		{"RefusedDuplicateWindowFromEnvironment", map[string]string{"ANOMALYD_EFFECTS_DUPLICATE_WINDOW": "soon"}, nil, "ANOMALYD_EFFECTS_DUPLICATE_WINDOW"},
		{"RefusedDuplicateWindowTooShortFromEnvironment", map[string]string{"ANOMALYD_EFFECTS_DUPLICATE_WINDOW": "1ms"}, nil, "--effects-duplicate-window"},
		{"RefusedNATSSyncFromEnvironment", map[string]string{"ANOMALYD_NATS_SYNC_ALWAYS": "maybe"}, nil, "ANOMALYD_NATS_SYNC_ALWAYS"},
		{"RefusedNATSSyncFlagValue", nil, []string{"--nats-sync-always=maybe"}, "nats-sync-always"},
		{"RefusedNegativeCommandCache", nil, []string{"--command-cache", "-1"}, "--command-cache"},
		{"RefusedNegativeSnapshotEvery", nil, []string{"--snapshot-every", "-1"}, "--snapshot-every"},
		{"RefusedFractionalSnapshotEvery", nil, []string{"--snapshot-every", "0.5"}, "--snapshot-every"},
		{"RefusedSnapshotEveryFromEnvironment", map[string]string{"ANOMALYD_SNAPSHOT_EVERY": "often"}, nil, "ANOMALYD_SNAPSHOT_EVERY"},
		{"RefusedFractionalCommandCache", nil, []string{"--command-cache", "2.5"}, "--command-cache"},
		{"RefusedCommandCacheFromEnvironment", map[string]string{"ANOMALYD_COMMAND_CACHE": "lots"}, nil, "ANOMALYD_COMMAND_CACHE"},
		{"RefusedUnknownFlag", nil, []string{"--listen", ":8080"}, "listen"},
		{"RefusedPositionalArgument", nil, []string{"serve"}, `"serve"`},
		{"RefusedPositionalArgumentAfterFlags", nil, []string{"--addr", "127.0.0.1:9000", "extra"}, `"extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := main.ParseConfig(tc.args, fakeEnv(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("ParseConfig(%q, %v) = %+v, want an error naming %s", tc.args, tc.env, c, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not name %s", err, tc.wantErr)
			}
		})
	}
}

func TestConfigFlagBeatsInvalidEnvironment(t *testing.T) {
	// The string settings are validated after the flags are parsed, so a flag
	// overrides an invalid environment value.
	t.Run("AcceptedWhenFlagReplacesInvalidLogFormat", func(t *testing.T) {
		c := parseConfig(t, []string{"--log-format", "json"}, map[string]string{"ANOMALYD_LOG_FORMAT": "xml"})
		if c.LogFormat != "json" {
			t.Errorf("LogFormat = %q, want json", c.LogFormat)
		}
	})

	typed := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"AcceptedWhenFlagReplacesInvalidNATSSync", map[string]string{"ANOMALYD_NATS_SYNC_ALWAYS": "maybe"}, []string{"--nats-sync-always=true"}},
		{"AcceptedWhenFlagReplacesInvalidCommandCache", map[string]string{"ANOMALYD_COMMAND_CACHE": "lots"}, []string{"--command-cache", "100"}},
		{"AcceptedWhenFlagReplacesInvalidDuplicateWindow", map[string]string{"ANOMALYD_EFFECTS_DUPLICATE_WINDOW": "soon"}, []string{"--effects-duplicate-window", "1m"}},
	}
	for _, tc := range typed {
		t.Run(tc.name, func(t *testing.T) {
			parseConfig(t, tc.args, tc.env)
		})
	}
}
