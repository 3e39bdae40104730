package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

// env is a getenv function backed by a map, so that tests never see the
// environment of the machine they run on.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

type result struct {
	code           int
	stdout, stderr string
}

// runCtl runs anomalyctl with args and the given environment.
func runCtl(t *testing.T, getenv func(string) string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, getenv, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs anomalyctl and fails the test unless it exits 0.
func mustRun(t *testing.T, getenv func(string) string, args ...string) result {
	t.Helper()
	r := runCtl(t, getenv, args...)
	if r.code != 0 {
		t.Fatalf("anomalyctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// onlyKey returns the single key of the keys file at path.
func onlyKey(t *testing.T, path string) auth.Key {
	t.Helper()
	keys, err := auth.ReadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("keys file %s holds %d keys, want 1", path, len(keys))
	}
	return keys[0]
}

// listRow returns the line of `keys list` output that shows key id.
func listRow(t *testing.T, out, id string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == id {
			return f
		}
	}
	t.Fatalf("keys list does not show %s:\n%s", id, out)
	return nil
}

func TestKeysCreate(t *testing.T) {
	t.Run("PrintsOnlySecretOnStdout", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		r := mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme",
			"--scopes", "anomalies:write, anomalies:read", "--name", "ci")

		secret, rest, _ := strings.Cut(r.stdout, "\n")
		if rest != "" || !strings.HasPrefix(secret, "anm_") {
			t.Fatalf("stdout = %q, want one line holding an anm_ secret", r.stdout)
		}
		k := onlyKey(t, path)
		if !strings.Contains(r.stderr, k.ID) || !strings.Contains(r.stderr, "acme") {
			t.Errorf("stderr does not report key %s of tenant acme:\n%s", k.ID, r.stderr)
		}
		if strings.Contains(r.stderr, secret) {
			t.Errorf("stderr repeats the secret:\n%s", r.stderr)
		}
		if k.Tenant != "acme" || k.Name != "ci" || strings.Join(k.Scopes, ",") != "anomalies:read,anomalies:write" {
			t.Errorf("stored key = %+v, want tenant acme, name ci, scopes anomalies:read,anomalies:write", k)
		}
	})

	t.Run("SecretAuthenticatesThroughKeyring", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		r := mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "agents:read")
		secret := strings.TrimSuffix(r.stdout, "\n")

		kr, err := auth.OpenKeyring(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := kr.Authenticate(secret)
		if err != nil {
			t.Fatalf("Authenticate with the printed secret: %v", err)
		}
		k := onlyKey(t, path)
		if p.Actor != (domain.Actor{ID: k.ID, Kind: domain.ActorAPIKey}) || p.Tenant != "acme" ||
			strings.Join(p.Scopes, ",") != "agents:read" {
			t.Errorf("principal = %+v, want key %s of tenant acme with scope agents:read", p, k.ID)
		}
	})

	t.Run("DataDirFromEnvironmentDecidesKeysFile", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		getenv := env(map[string]string{"ANOMALYD_DATA_DIR": dataDir})
		mustRun(t, getenv, "keys", "create", "--tenant", "acme", "--scopes", "anomalies:read")

		k := onlyKey(t, filepath.Join(dataDir, "keys.json"))
		if k.Tenant != "acme" {
			t.Errorf("key in <data-dir>/keys.json has tenant %q, want acme", k.Tenant)
		}
		r := mustRun(t, getenv, "keys", "list")
		listRow(t, r.stdout, k.ID)
	})

	t.Run("KeysFileFromEnvironmentBeatsDataDir", func(t *testing.T) {
		dir := t.TempDir()
		keysFile := filepath.Join(dir, "elsewhere.json")
		getenv := env(map[string]string{"ANOMALYD_DATA_DIR": filepath.Join(dir, "data"), "ANOMALYD_KEYS_FILE": keysFile})
		mustRun(t, getenv, "keys", "create", "--tenant", "acme", "--scopes", "anomalies:read")

		onlyKey(t, keysFile)
		if _, err := os.Stat(filepath.Join(dir, "data", "keys.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("<data-dir>/keys.json was written although ANOMALYD_KEYS_FILE is set (stat: %v)", err)
		}
	})
}

func TestKeysList(t *testing.T) {
	t.Run("ShowsKeyButNeverSecretOrHash", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		created := mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme",
			"--scopes", "anomalies:resolve,anomalies:read")
		secret := strings.TrimSuffix(created.stdout, "\n")
		k := onlyKey(t, path)

		r := mustRun(t, env(nil), "keys", "list", "--keys-file", path)
		row := listRow(t, r.stdout, k.ID)
		if !strings.Contains(strings.Join(row, " "), "acme") || !strings.Contains(strings.Join(row, " "), "anomalies:read,anomalies:resolve") {
			t.Errorf("row of %s = %q, want tenant acme and scopes anomalies:read,anomalies:resolve", k.ID, row)
		}
		if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, strings.TrimPrefix(secret, "anm_")) {
			t.Errorf("keys list shows the secret:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout, k.SecretSHA256) {
			t.Errorf("keys list shows the secret's hash:\n%s", r.stdout)
		}
		if row[len(row)-1] != "-" {
			t.Errorf("key that was not revoked shows revocation %q, want -", row[len(row)-1])
		}
	})

	t.Run("HeaderOnlyWithoutKeysFile", func(t *testing.T) {
		r := mustRun(t, env(nil), "keys", "list", "--keys-file", filepath.Join(t.TempDir(), "keys.json"))
		if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ID") {
			t.Errorf("keys list without a keys file = %q, want the header line only", r.stdout)
		}
	})
}

func TestKeysRevoke(t *testing.T) {
	t.Run("ListShowsRevocationTime", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "anomalies:read")
		k := onlyKey(t, path)

		r := mustRun(t, env(nil), "keys", "revoke", "--keys-file", path, k.ID)
		if !strings.Contains(r.stdout, k.ID) {
			t.Errorf("revoke output does not name %s:\n%s", k.ID, r.stdout)
		}
		revoked := onlyKey(t, path)
		if revoked.RevokedAt == nil {
			t.Fatalf("key %s is not revoked in the keys file", k.ID)
		}

		list := mustRun(t, env(nil), "keys", "list", "--keys-file", path)
		row := listRow(t, list.stdout, k.ID)
		if want := revoked.RevokedAt.Format(time.RFC3339); row[len(row)-1] != want {
			t.Errorf("row of %s = %q, want it to end in the revocation time %s", k.ID, row, want)
		}
	})

	t.Run("RevokedSecretRefusedByKeyring", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		created := mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "anomalies:read")
		secret := strings.TrimSuffix(created.stdout, "\n")
		mustRun(t, env(nil), "keys", "revoke", "--keys-file", path, onlyKey(t, path).ID)

		kr, err := auth.OpenKeyring(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kr.Authenticate(secret); !errors.Is(err, auth.ErrUnknownKey) {
			t.Errorf("Authenticate with a revoked secret: error = %v, want ErrUnknownKey", err)
		}
	})

	t.Run("AcceptsFlagsAfterID", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "anomalies:read")
		mustRun(t, env(nil), "keys", "revoke", onlyKey(t, path).ID, "--keys-file", path)
		if onlyKey(t, path).RevokedAt == nil {
			t.Error("key is not revoked")
		}
	})
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name      string
		args      []string // --keys-file <temp> is added after the subcommand
		wantCode  int
		wantInErr []string
	}{
		{"RefusedWithoutTenant", []string{"keys", "create", "--scopes", "anomalies:read"}, 1, []string{"--tenant"}},
		{"RefusedForMalformedTenant", []string{"keys", "create", "--tenant", "acme corp", "--scopes", "anomalies:read"}, 1, []string{"--tenant", "acme corp"}},
		{"RefusedForUnknownScope", []string{"keys", "create", "--tenant", "acme", "--scopes", "anomalies:read,anomalies:delete"}, 1, []string{"--scopes", "anomalies:delete"}},
		{"RefusedWithoutScopes", []string{"keys", "create", "--tenant", "acme"}, 1, []string{"--scopes"}},
		{"RefusedForUnknownFlag", []string{"keys", "create", "--tenant", "acme", "--scopes", "anomalies:read", "--colour", "red"}, 1, []string{"colour"}},
		{"RefusedRevokeWithoutID", []string{"keys", "revoke"}, 1, []string{"key id"}},
		{"UsageForUnknownSubcommand", []string{"keys", "rotate"}, 2, []string{"usage:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.json")
			args := append([]string{tc.args[0], tc.args[1], "--keys-file", path}, tc.args[2:]...)
			r := runCtl(t, env(nil), args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("keys file was written by a refused command (stat: %v)", err)
			}
		})
	}

	t.Run("RefusedRevokeOfUnknownID", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.json")
		mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "anomalies:read")
		r := runCtl(t, env(nil), "keys", "revoke", "--keys-file", path, "key_000000000000")
		if r.code != 1 || !strings.Contains(r.stderr, "key_000000000000") {
			t.Errorf("exit %d, stderr %q; want exit 1 and a message naming key_000000000000", r.code, r.stderr)
		}
		if k := onlyKey(t, path); k.RevokedAt != nil {
			t.Errorf("existing key %s was revoked", k.ID)
		}
	})

	t.Run("UsageWithoutArguments", func(t *testing.T) {
		for _, args := range [][]string{nil, {"keys"}, {"tokens", "create"}} {
			r := runCtl(t, env(nil), args...)
			if r.code != 2 || !strings.Contains(r.stderr, "usage:") {
				t.Errorf("anomalyctl %q: exit %d, stderr %q; want exit 2 with usage", args, r.code, r.stderr)
			}
		}
	})
}

func TestPolicySetAndShow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	mustRun(t, env(nil), "keys", "create", "--keys-file", path, "--tenant", "acme", "--scopes", "anomalies:read")
	out := mustRun(t, env(nil), "policy", "set", "--keys-file", path, "--tenant", "acme", "--medium", "suspended").stdout
	if !strings.Contains(out, "medium=suspended") || !strings.Contains(out, "critical=quarantined") {
		t.Fatalf("policy set printed %q", out)
	}
	mustRun(t, env(nil), "policy", "set", "--keys-file", path, "--tenant", "acme", "--low", "throttled")
	out = mustRun(t, env(nil), "policy", "show", "--keys-file", path).stdout
	if !strings.Contains(out, "acme: low=throttled medium=suspended high=suspended critical=quarantined") {
		t.Fatalf("policy show = %q: the second set must keep the first one's medium", out)
	}
	onlyKey(t, path) // setting a policy keeps the keys
	if r := runCtl(t, env(nil), "policy", "set", "--keys-file", path, "--tenant", "acme", "--high", "revoked"); r.code == 0 ||
		!strings.Contains(r.stderr, "cannot revoke") {
		t.Fatalf("revoked as auto-response: exit %d, stderr %q", r.code, r.stderr)
	}
}
