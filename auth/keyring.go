package auth

import (
	"errors"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/domain"
)

// reloadEvery bounds how often the keyring looks at the keys file: a key
// revoked with anomalyctl stops working within this time, without a restart. A
// secret that matches no key makes it look at once, so a new key works at once.
const reloadEvery = time.Second

// Keyring authenticates API key secrets against a keys file, and picks up
// changes to the file while the server runs.
type Keyring struct {
	path   string
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	byHash   map[string]Key
	policies map[string]domain.Policy
	loads    uint64 // how often the file was (re)loaded
	modTime  time.Time
	size     int64
	checked  time.Time
}

// OpenKeyring loads the keys file at path (a missing file is an empty keyring,
// filled in once keys are created). Reload failures are logged to logger (nil
// discards them). It returns an error for a malformed file.
func OpenKeyring(path string, logger *slog.Logger) (*Keyring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k := &Keyring{path: path, logger: logger, now: time.Now}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Len returns the number of keys that are not revoked.
func (k *Keyring) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.maybeReload()
	return len(k.byHash)
}

// Policies returns the auto-response policies the keys file configures, and a
// generation that changes whenever the file is reloaded, so that a caller can
// tell whether to look again.
func (k *Keyring) Policies() (map[string]domain.Policy, uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.maybeReload()
	return maps.Clone(k.policies), k.loads
}

// ErrUnknownKey is returned for a secret that matches no live key.
var ErrUnknownKey = errors.New("unknown or revoked API key")

// Authenticate returns the principal of the key whose secret is given, or
// ErrUnknownKey.
func (k *Keyring) Authenticate(secret string) (domain.Principal, error) {
	h := hashSecret(secret)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.maybeReload()
	key, ok := k.byHash[h]
	if !ok {
		// A key created a moment ago must work at once: look at the file again
		// now rather than at the next periodic check (a stat when unchanged).
		k.checked = time.Time{}
		k.maybeReload()
		if key, ok = k.byHash[h]; !ok {
			return domain.Principal{}, ErrUnknownKey
		}
	}
	return domain.Principal{
		Actor:  domain.Actor{ID: key.ID, Kind: domain.ActorAPIKey},
		Tenant: key.Tenant, Scopes: key.Scopes,
	}, nil
}

// maybeReload re-reads the file when it changed; k.mu is held. A file that
// became malformed keeps the previous keys and is logged.
func (k *Keyring) maybeReload() {
	now := k.now()
	if now.Sub(k.checked) < reloadEvery {
		return
	}
	k.checked = now
	fi, err := os.Stat(k.path)
	switch {
	case err == nil && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size:
		return
	case err != nil && k.byHash != nil && len(k.byHash) == 0 && k.size == 0:
		return // still no keys file
	}
	if err := k.load(); err != nil {
		k.logger.Error("keys file not reloaded; keeping the previous keys", "path", k.path, "err", err)
	}
}

func (k *Keyring) reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checked = k.now()
	return k.load()
}

func (k *Keyring) load() error {
	var modTime time.Time
	var size int64
	if fi, err := os.Stat(k.path); err == nil {
		modTime, size = fi.ModTime(), fi.Size()
	}
	f, err := ReadFile(k.path)
	if err != nil {
		return err
	}
	policies, err := f.TenantPolicies()
	if err != nil {
		return err
	}
	byHash := make(map[string]Key, len(f.Keys))
	for _, key := range f.Keys {
		if key.RevokedAt == nil {
			byHash[key.SecretSHA256] = key
		}
	}
	k.byHash, k.policies, k.modTime, k.size = byHash, policies, modTime, size
	k.loads++
	return nil
}
