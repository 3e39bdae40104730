package auth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

// keysPath returns a keys file path in a fresh directory; the file does not exist yet.
func keysPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "keys.json")
}

// createKey creates a key and fails the test when that is refused.
func createKey(t *testing.T, path, tenant string, scopes ...string) (auth.Key, string) {
	t.Helper()
	k, secret, err := auth.CreateKey(path, tenant, "test", scopes, time.Now())
	if err != nil {
		t.Fatalf("CreateKey(%q, %v): %v", tenant, scopes, err)
	}
	return k, secret
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// syncBuffer is a log destination the keyring may write to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openKeyring(t *testing.T, path string, logger *slog.Logger) *auth.Keyring {
	t.Helper()
	kr, err := auth.OpenKeyring(path, logger)
	if err != nil {
		t.Fatalf("OpenKeyring: %v", err)
	}
	return kr
}

// eventually polls cond until it holds, and fails the test when it still does
// not after a deadline far beyond the keyring's one-second reload interval.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	const wait = 5 * time.Second
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not the case after %s: %s", wait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func authenticates(kr *auth.Keyring, secret string) bool {
	_, err := kr.Authenticate(secret)
	return err == nil
}

func refused(kr *auth.Keyring, secret string) bool {
	_, err := kr.Authenticate(secret)
	return errors.Is(err, auth.ErrUnknownKey)
}

func TestCreateKey(t *testing.T) {
	t.Run("SecretReturnedButOnlyItsHashStored", func(t *testing.T) {
		path := keysPath(t)
		k, secret := createKey(t, path, "acme", domain.ScopeAnomaliesRead)

		raw := readFile(t, path)
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("keys file contains the secret:\n%s", raw)
		}
		if body := strings.TrimPrefix(secret, "anm_"); bytes.Contains(raw, []byte(body)) {
			t.Fatalf("keys file contains the secret without its prefix:\n%s", raw)
		}
		want := sha256Hex(secret)
		if !bytes.Contains(raw, []byte(want)) {
			t.Fatalf("keys file does not contain the SHA-256 hex %s of the secret:\n%s", want, raw)
		}
		if k.SecretSHA256 != want {
			t.Errorf("Key.SecretSHA256 = %q, want %q", k.SecretSHA256, want)
		}
	})

	t.Run("FileReadableByOwnerOnly", func(t *testing.T) {
		path := keysPath(t)
		createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("keys file mode = %v, want 0600", got)
		}
	})

	t.Run("ScopesSortedAndDeduplicated", func(t *testing.T) {
		path := keysPath(t)
		k, _ := createKey(t, path, "acme",
			domain.ScopeAnomaliesWrite, domain.ScopeAgentsRead, domain.ScopeAnomaliesWrite, domain.ScopeAgentsRead)
		want := []string{domain.ScopeAgentsRead, domain.ScopeAnomaliesWrite}
		if !slices.Equal(k.Scopes, want) {
			t.Errorf("returned scopes = %v, want %v", k.Scopes, want)
		}
		keys, err := auth.ReadKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || !slices.Equal(keys[0].Scopes, want) {
			t.Errorf("stored keys = %+v, want one key with scopes %v", keys, want)
		}
	})

	t.Run("IDAndSecretCarryTheirPrefixes", func(t *testing.T) {
		k, secret := createKey(t, keysPath(t), "acme", domain.ScopeAnomaliesRead)
		if !strings.HasPrefix(k.ID, "key_") || len(k.ID) == len("key_") {
			t.Errorf("id = %q, want key_<something>", k.ID)
		}
		if !strings.HasPrefix(secret, "anm_") || len(secret) == len("anm_") {
			t.Errorf("secret = %q, want anm_<something>", secret)
		}
	})

	t.Run("StoresTenantNameAndCreationTime", func(t *testing.T) {
		path := keysPath(t)
		now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
		k, _, err := auth.CreateKey(path, "acme", "ci pipeline", []string{domain.ScopeAnomaliesRead}, now)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := auth.ReadKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("got %d keys, want 1", len(keys))
		}
		got := keys[0]
		if got.ID != k.ID || got.Tenant != "acme" || got.Name != "ci pipeline" || !got.CreatedAt.Equal(now) || got.RevokedAt != nil {
			t.Errorf("stored key = %+v, want id %s, tenant acme, name \"ci pipeline\", created %s, not revoked", got, k.ID, now)
		}
	})

	t.Run("TwoKeysDiffer", func(t *testing.T) {
		path := keysPath(t)
		k1, s1 := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		k2, s2 := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		if k1.ID == k2.ID {
			t.Errorf("both keys have id %s", k1.ID)
		}
		if s1 == s2 {
			t.Errorf("both keys have secret %s", s1)
		}
		keys, err := auth.ReadKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 {
			t.Errorf("file holds %d keys, want 2", len(keys))
		}
	})

	refusals := []struct {
		name   string
		tenant string
		scopes []string
	}{
		{"RefusedForUnknownScope", "acme", []string{domain.ScopeAnomaliesRead, "anomalies:delete"}},
		{"RefusedForEmptyScopeList", "acme", nil},
		{"RefusedForEmptyScope", "acme", []string{""}},
		{"RefusedForTenantWithDot", "acme.corp", []string{domain.ScopeAnomaliesRead}},
		{"RefusedForEmptyTenant", "", []string{domain.ScopeAnomaliesRead}},
		{"RefusedForTooLongTenant", strings.Repeat("a", 65), []string{domain.ScopeAnomaliesRead}},
	}
	for _, tc := range refusals {
		t.Run(tc.name+"FileUnchanged", func(t *testing.T) {
			path := keysPath(t)
			createKey(t, path, "existing", domain.ScopeAgentsRead)
			before := readFile(t, path)

			if _, _, err := auth.CreateKey(path, tc.tenant, "bad", tc.scopes, time.Now()); err == nil {
				t.Fatalf("CreateKey(%q, %v) succeeded, want an error", tc.tenant, tc.scopes)
			}
			if after := readFile(t, path); !bytes.Equal(before, after) {
				t.Errorf("keys file changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
		t.Run(tc.name+"NoFileCreated", func(t *testing.T) {
			path := keysPath(t)
			if _, _, err := auth.CreateKey(path, tc.tenant, "bad", tc.scopes, time.Now()); err == nil {
				t.Fatalf("CreateKey(%q, %v) succeeded, want an error", tc.tenant, tc.scopes)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("keys file exists after a refused CreateKey (stat: %v)", err)
			}
		})
	}
}

func TestReadKeys(t *testing.T) {
	t.Run("NoKeysWhenFileMissing", func(t *testing.T) {
		keys, err := auth.ReadKeys(keysPath(t))
		if err != nil {
			t.Fatalf("ReadKeys of a missing file: %v", err)
		}
		if len(keys) != 0 {
			t.Errorf("got %d keys, want none", len(keys))
		}
	})

	hash := strings.Repeat("ab", 32)
	errs := []struct {
		name, content string
	}{
		{"ErrorNamingFileWhenMalformedJSON", `{"keys": [`},
		{"ErrorNamingFileWhenNotAKeysObject", `[1, 2, 3]`},
		{"ErrorNamingFileWhenScopeUnknown",
			`{"keys":[{"id":"key_1","tenant":"acme","scopes":["anomalies:delete"],"secret_sha256":"` + hash + `"}]}`},
		{"ErrorNamingFileWhenTenantMalformed",
			`{"keys":[{"id":"key_1","tenant":"a b","scopes":["anomalies:read"],"secret_sha256":"` + hash + `"}]}`},
		{"ErrorNamingFileWhenHashMissing",
			`{"keys":[{"id":"key_1","tenant":"acme","scopes":["anomalies:read"]}]}`},
		{"ErrorNamingFileWhenIDMissing",
			`{"keys":[{"tenant":"acme","scopes":["anomalies:read"],"secret_sha256":"` + hash + `"}]}`},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			path := keysPath(t)
			writeFile(t, path, tc.content)
			keys, err := auth.ReadKeys(path)
			if err == nil {
				t.Fatalf("ReadKeys succeeded with %+v, want an error", keys)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}

	t.Run("ErrorNamesUnknownScope", func(t *testing.T) {
		path := keysPath(t)
		writeFile(t, path, `{"keys":[{"id":"key_1","tenant":"acme","scopes":["anomalies:delete"],"secret_sha256":"`+hash+`"}]}`)
		_, err := auth.ReadKeys(path)
		if err == nil || !strings.Contains(err.Error(), "anomalies:delete") {
			t.Errorf("error = %v, want one naming the scope anomalies:delete", err)
		}
	})
}

func TestKeyringAuthenticate(t *testing.T) {
	t.Run("SecretGivesPrincipalOfKey", func(t *testing.T) {
		path := keysPath(t)
		k, secret := createKey(t, path, "acme", domain.ScopeAnomaliesWrite, domain.ScopeAnomaliesRead)
		createKey(t, path, "other", domain.ScopeAgentsRead)
		kr := openKeyring(t, path, discardLogger())

		p, err := kr.Authenticate(secret)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		want := domain.Principal{
			Actor:  domain.Actor{ID: k.ID, Kind: domain.ActorAPIKey},
			Tenant: "acme",
			Scopes: []string{domain.ScopeAnomaliesRead, domain.ScopeAnomaliesWrite},
		}
		if p.Actor != want.Actor || p.Tenant != want.Tenant || !slices.Equal(p.Scopes, want.Scopes) {
			t.Errorf("principal = %+v, want %+v", p, want)
		}
		if got := kr.Len(); got != 2 {
			t.Errorf("Len = %d, want 2", got)
		}
	})

	t.Run("UnknownKeyForWrongSecret", func(t *testing.T) {
		path := keysPath(t)
		_, secret := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		kr := openKeyring(t, path, discardLogger())
		for _, wrong := range []string{"", "anm_", secret + "x", secret[:len(secret)-1], sha256Hex(secret)} {
			if _, err := kr.Authenticate(wrong); !errors.Is(err, auth.ErrUnknownKey) {
				t.Errorf("Authenticate(%q) error = %v, want ErrUnknownKey", wrong, err)
			}
		}
	})

	t.Run("UnknownKeyWhenRevokedBeforeOpen", func(t *testing.T) {
		path := keysPath(t)
		k, secret := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		if _, err := auth.RevokeKey(path, k.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		kr := openKeyring(t, path, discardLogger())
		if _, err := kr.Authenticate(secret); !errors.Is(err, auth.ErrUnknownKey) {
			t.Errorf("Authenticate of a revoked key: error = %v, want ErrUnknownKey", err)
		}
		if got := kr.Len(); got != 0 {
			t.Errorf("Len = %d, want 0", got)
		}
	})

	t.Run("OpenFailsForMalformedFile", func(t *testing.T) {
		path := keysPath(t)
		writeFile(t, path, "not json")
		if _, err := auth.OpenKeyring(path, discardLogger()); err == nil {
			t.Fatal("OpenKeyring of a malformed file succeeded, want an error")
		}
	})
}

func TestKeyringReload(t *testing.T) {
	t.Run("KeyCreatedAfterOpenWorks", func(t *testing.T) {
		path := keysPath(t)
		createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		kr := openKeyring(t, path, discardLogger())

		k, secret := createKey(t, path, "acme", domain.ScopeAgentsWrite)
		eventually(t, "the new key "+k.ID+" authenticates", func() bool { return authenticates(kr, secret) })
	})

	t.Run("KeyCreatedAfterOpenOnMissingFileWorks", func(t *testing.T) {
		path := keysPath(t)
		kr := openKeyring(t, path, discardLogger())
		if got := kr.Len(); got != 0 {
			t.Fatalf("Len of a keyring without keys file = %d, want 0", got)
		}

		k, secret := createKey(t, path, "acme", domain.ScopeAgentsWrite)
		eventually(t, "the new key "+k.ID+" authenticates", func() bool { return authenticates(kr, secret) })
	})

	t.Run("RevokedKeyStopsWorking", func(t *testing.T) {
		path := keysPath(t)
		k, secret := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		_, other := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		kr := openKeyring(t, path, discardLogger())
		if !authenticates(kr, secret) {
			t.Fatal("key does not authenticate before it is revoked")
		}

		if _, err := auth.RevokeKey(path, k.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the revoked key "+k.ID+" is refused", func() bool { return refused(kr, secret) })
		if !authenticates(kr, other) {
			t.Error("the key that was not revoked stopped working")
		}
	})

	t.Run("MalformedFileKeepsPreviousKeys", func(t *testing.T) {
		path := keysPath(t)
		_, secret := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		var logs syncBuffer
		kr := openKeyring(t, path, slog.New(slog.NewTextHandler(&logs, nil)))

		writeFile(t, path, `{"keys": [ this is not json`)
		// The keyring logs the failed reload; that log line is the evidence
		// that it has looked at the malformed file.
		eventually(t, "the keyring logs that it could not reload "+path, func() bool {
			authenticates(kr, secret) // drives the reload check
			l := logs.String()
			return strings.Contains(l, "level=ERROR") && strings.Contains(l, path)
		})
		if p, err := kr.Authenticate(secret); err != nil || p.Tenant != "acme" {
			t.Errorf("after a malformed reload: principal %+v, error %v; want the previous key to work", p, err)
		}
	})

	t.Run("FixedFileIsReloadedAfterMalformedOne", func(t *testing.T) {
		path := keysPath(t)
		createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		good := readFile(t, path)
		var logs syncBuffer
		kr := openKeyring(t, path, slog.New(slog.NewTextHandler(&logs, nil)))

		writeFile(t, path, "garbage")
		eventually(t, "the keyring logs that it could not reload", func() bool {
			kr.Len()
			return strings.Contains(logs.String(), "level=ERROR")
		})
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		k, secret := createKey(t, path, "acme", domain.ScopeAgentsRead)
		eventually(t, "the key "+k.ID+" added to the repaired file authenticates", func() bool { return authenticates(kr, secret) })
	})
}

func TestRevokeKey(t *testing.T) {
	t.Run("ErrorForUnknownID", func(t *testing.T) {
		path := keysPath(t)
		createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		before := readFile(t, path)
		_, err := auth.RevokeKey(path, "key_000000000000", time.Now())
		if err == nil {
			t.Fatal("RevokeKey of an unknown id succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "key_000000000000") {
			t.Errorf("error %q does not name the id", err)
		}
		if after := readFile(t, path); !bytes.Equal(before, after) {
			t.Errorf("keys file changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("ErrorWhenFileMissing", func(t *testing.T) {
		if _, err := auth.RevokeKey(keysPath(t), "key_000000000000", time.Now()); err == nil {
			t.Fatal("RevokeKey without a keys file succeeded, want an error")
		}
	})

	t.Run("RevokedAtStoredOnlyOnTheKey", func(t *testing.T) {
		path := keysPath(t)
		k, _ := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		other, _ := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		got, err := auth.RevokeKey(path, k.ID, at)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.ID || got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
			t.Errorf("RevokeKey returned %+v, want key %s revoked at %s", got, k.ID, at)
		}
		keys, err := auth.ReadKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			switch key.ID {
			case k.ID:
				if key.RevokedAt == nil || !key.RevokedAt.Equal(at) {
					t.Errorf("stored revoked_at of %s = %v, want %s", key.ID, key.RevokedAt, at)
				}
			case other.ID:
				if key.RevokedAt != nil {
					t.Errorf("key %s that was not revoked has revoked_at %s", key.ID, key.RevokedAt)
				}
			}
		}
	})

	t.Run("SecondRevocationKeepsFirstTime", func(t *testing.T) {
		path := keysPath(t)
		k, _ := createKey(t, path, "acme", domain.ScopeAnomaliesRead)
		first := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		if _, err := auth.RevokeKey(path, k.ID, first); err != nil {
			t.Fatal(err)
		}
		got, err := auth.RevokeKey(path, k.ID, first.Add(time.Hour))
		if err != nil {
			t.Fatalf("second RevokeKey: %v", err)
		}
		if got.RevokedAt == nil || !got.RevokedAt.Equal(first) {
			t.Errorf("second RevokeKey returned revoked_at %v, want %s", got.RevokedAt, first)
		}
		keys, err := auth.ReadKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].RevokedAt == nil || !keys[0].RevokedAt.Equal(first) {
			t.Errorf("stored keys = %+v, want one key revoked at %s", keys, first)
		}
	})
}

func TestParseScopes(t *testing.T) {
	ok := []struct {
		name, in string
		want     []string
	}{
		{"ListWithSpaces", " anomalies:read , agents:write,anomalies:resolve ",
			[]string{domain.ScopeAnomaliesRead, domain.ScopeAgentsWrite, domain.ScopeAnomaliesResolve}},
		{"SingleScope", "agents:read", []string{domain.ScopeAgentsRead}},
		{"EmptyItemsSkipped", "anomalies:read,,", []string{domain.ScopeAnomaliesRead}},
		{"NoScopesFromEmptyString", "", nil},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.ParseScopes(tc.in)
			if err != nil {
				t.Fatalf("ParseScopes(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseScopes(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	bad := []struct {
		name, in, unknown string
	}{
		{"ErrorForUnknownScope", "anomalies:read,anomalies:delete", "anomalies:delete"},
		{"ErrorForScopeWithWrongCase", "Anomalies:Read", "Anomalies:Read"},
		{"ErrorForSpaceSeparatedList", "anomalies:read agents:read", "anomalies:read agents:read"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.ParseScopes(tc.in)
			if err == nil {
				t.Fatalf("ParseScopes(%q) = %q, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.unknown) {
				t.Errorf("error %q does not name the unknown scope %q", err, tc.unknown)
			}
		})
	}
}

// A key created while the server runs works on its very first request: an
// unknown secret makes the keyring look at the file again at once.
func TestNewKeyWorksAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if _, _, err := auth.CreateKey(path, "acme", "first", []string{domain.ScopeAnomaliesRead}, time.Now()); err != nil {
		t.Fatal(err)
	}
	k, err := auth.OpenKeyring(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := auth.CreateKey(path, "acme", "second", []string{domain.ScopeAnomaliesRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Authenticate(secret); err != nil {
		t.Fatalf("a key created a moment ago: %v", err)
	}
}
