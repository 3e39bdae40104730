// Package auth holds the credentials anomalyd accepts: API keys from a keys file
// that stores only SHA-256 hashes of their secrets.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/domain"
)

// secretPrefix marks anomalyd API key secrets, so that secret scanners can find
// a leaked one.
const secretPrefix = "anm_"

// Key is one API key as the keys file holds it: never the secret, only its hash.
type Key struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Tenant       string     `json:"tenant"`
	Scopes       []string   `json:"scopes"`
	SecretSHA256 string     `json:"secret_sha256"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at"`
}

// File is the keys file: the API keys, and the tenants' auto-response
// policies (severity → containment), so that one file holds a tenant's access
// configuration.
type File struct {
	Keys     []Key                        `json:"keys"`
	Policies map[string]map[string]string `json:"policies,omitempty"`
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ReadKeys returns the keys of the file at path; a missing file has none. It
// returns an error naming the file when it is not a valid keys file.
func ReadKeys(path string) ([]Key, error) {
	f, err := ReadFile(path)
	return f.Keys, err
}

// ReadFile reads and checks the keys file at path; a missing file is empty. It
// returns an error naming the file when it is not a valid keys file.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, nil
	}
	if err != nil {
		return File{}, fmt.Errorf("read keys file: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return File{}, fmt.Errorf("keys file %s: %w", path, err)
	}
	for i, k := range f.Keys {
		if err := k.validate(); err != nil {
			return File{}, fmt.Errorf("keys file %s: key %d: %w", path, i, err)
		}
	}
	if _, err := f.TenantPolicies(); err != nil {
		return File{}, fmt.Errorf("keys file %s: %w", path, err)
	}
	return f, nil
}

// TenantPolicies returns the auto-response policy of every tenant the file
// configures one for. It returns an error naming a malformed entry.
func (f File) TenantPolicies() (map[string]domain.Policy, error) {
	out := make(map[string]domain.Policy, len(f.Policies))
	for tenant, m := range f.Policies {
		if !domain.ValidTenant(tenant) {
			return nil, fmt.Errorf("policies: tenant %q must match [A-Za-z0-9_-]{1,64}", tenant)
		}
		p, err := domain.ParsePolicy(m)
		if err != nil {
			return nil, fmt.Errorf("policies: tenant %s: %v", tenant, domain.ErrorMessage(err))
		}
		out[tenant] = p
	}
	return out, nil
}

func (k Key) validate() error {
	switch {
	case k.ID == "":
		return errors.New("id is empty")
	case !domain.ValidTenant(k.Tenant):
		return fmt.Errorf("key %s: tenant %q must match [A-Za-z0-9_-]{1,64}", k.ID, k.Tenant)
	case len(k.SecretSHA256) != 64:
		return fmt.Errorf("key %s: secret_sha256 must be 64 hex digits", k.ID)
	}
	for _, s := range k.Scopes {
		if !domain.ValidScope(s) {
			return fmt.Errorf("key %s: unknown scope %q", k.ID, s)
		}
	}
	return nil
}

// writeFile replaces the keys file atomically, readable by its owner only.
func writeFile(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create keys directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*.json")
	if err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// keysLock serialises the read-modify-write of keys files within one process.
var keysLock sync.Mutex

// CreateKey adds a key for tenant with the given scopes to the keys file at path
// and returns it with its secret, which is shown this once and stored nowhere.
func CreateKey(path, tenant, name string, scopes []string, now time.Time) (Key, string, error) {
	keysLock.Lock()
	defer keysLock.Unlock()
	f, err := ReadFile(path)
	if err != nil {
		return Key{}, "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, "", err
	}
	var idRaw [6]byte
	if _, err := rand.Read(idRaw[:]); err != nil {
		return Key{}, "", err
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k := Key{
		ID: "key_" + hex.EncodeToString(idRaw[:]), Name: name, Tenant: tenant,
		Scopes: slices.Compact(slices.Sorted(slices.Values(scopes))), SecretSHA256: hashSecret(secret),
		CreatedAt: now.UTC().Truncate(time.Second),
	}
	if len(k.Scopes) == 0 {
		return Key{}, "", errors.New("a key needs at least one scope")
	}
	if err := k.validate(); err != nil {
		return Key{}, "", err
	}
	f.Keys = append(f.Keys, k)
	if err := writeFile(path, f); err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// RevokeKey marks the key with id revoked in the keys file at path. It returns
// an error when there is no such key.
func RevokeKey(path, id string, now time.Time) (Key, error) {
	keysLock.Lock()
	defer keysLock.Unlock()
	f, err := ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	for i := range f.Keys {
		if f.Keys[i].ID == id {
			if f.Keys[i].RevokedAt == nil {
				at := now.UTC().Truncate(time.Second)
				f.Keys[i].RevokedAt = &at
			}
			return f.Keys[i], writeFile(path, f)
		}
	}
	return Key{}, fmt.Errorf("no key with id %q", id)
}

// ParseScopes splits a comma-separated scope list and checks every scope.
func ParseScopes(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !domain.ValidScope(p) {
			return nil, fmt.Errorf("unknown scope %q (known: %s)", p, strings.Join(domain.AllScopes, ", "))
		}
		out = append(out, p)
	}
	return out, nil
}

// SetPolicy sets tenant's auto-response policy in the keys file at path. The
// running server records the change in the tenant's log and applies it to
// anomalies reported from then on.
func SetPolicy(path, tenant string, p domain.Policy) error {
	keysLock.Lock()
	defer keysLock.Unlock()
	if !domain.ValidTenant(tenant) {
		return fmt.Errorf("tenant %q must match [A-Za-z0-9_-]{1,64}", tenant)
	}
	f, err := ReadFile(path)
	if err != nil {
		return err
	}
	if f.Policies == nil {
		f.Policies = map[string]map[string]string{}
	}
	m := map[string]string{}
	for sev, c := range p.Complete() {
		m[string(sev)] = c.String()
	}
	f.Policies[tenant] = m
	return writeFile(path, f)
}
