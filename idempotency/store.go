// Package idempotency keeps the records behind the Idempotency-Key header in a
// JetStream key-value bucket: they survive a restart of anomalyd and are shared
// by every instance on one NATS.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	njs "github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultBucket = "ANOMALYD_IDEMPOTENCY"
	DefaultTTL    = 24 * time.Hour
	// DefaultPendingTimeout is how long a claim without an outcome blocks
	// others; after it, the request is taken to have died (a crash) and a retry
	// may run it again. It exceeds the server's request time limits.
	DefaultPendingTimeout = time.Minute
)

// Config configures the bucket.
type Config struct {
	Bucket         string
	TTL            time.Duration // how long a key is remembered; at least 24 h by contract
	PendingTimeout time.Duration
	Replicas       int
	Now            func() time.Time
}

// Store implements claim, complete and release of idempotency keys.
type Store struct {
	kv  njs.KeyValue
	cfg Config
}

type record struct {
	Fingerprint string    `json:"fingerprint"`
	Done        bool      `json:"done"`
	ClaimedAt   time.Time `json:"claimed_at"`
	Response    []byte    `json:"response,omitempty"`
}

// New creates or updates the bucket and returns a store on it.
func New(ctx context.Context, js njs.JetStream, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.PendingTimeout == 0 {
		cfg.PendingTimeout = DefaultPendingTimeout
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, njs.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "anomalyd Idempotency-Key records",
		TTL:         cfg.TTL,
		Storage:     njs.FileStorage,
		Replicas:    cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency: create bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv, cfg: cfg}, nil
}

// Claim reserves key for a request whose content has fingerprint fp. It returns
// the response stored by an earlier request with the same key and fingerprint,
// or nil when this request now holds the key and must Complete or Release it.
// It returns an IDEMPOTENCY_MISMATCH *domain.Error when the key was used with
// other content, and a CONFLICT *domain.Error while another request with the
// key is still running. key must be a valid key-value key (hex is).
func (s *Store) Claim(ctx context.Context, key, fp string) ([]byte, error) {
	for range 3 {
		mine, err := json.Marshal(record{Fingerprint: fp, ClaimedAt: s.cfg.Now().UTC()})
		if err != nil {
			return nil, err
		}
		_, err = s.kv.Create(ctx, key, mine)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, njs.ErrKeyExists) {
			return nil, fmt.Errorf("idempotency: claim: %w", err)
		}
		entry, err := s.kv.Get(ctx, key)
		if errors.Is(err, njs.ErrKeyNotFound) {
			continue // expired or released in between: try to claim again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: read: %w", err)
		}
		var rec record
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			return nil, fmt.Errorf("idempotency: decode record %s: %w", key, err)
		}
		switch {
		case rec.Fingerprint != fp:
			return nil, domain.Errorf(domain.EIDEMPOTENCY, "this Idempotency-Key was used with another request")
		case rec.Done:
			return rec.Response, nil
		case s.cfg.Now().Sub(rec.ClaimedAt) < s.cfg.PendingTimeout:
			return nil, domain.Errorf(domain.ECONFLICT, "a request with this Idempotency-Key is still in progress; retry shortly")
		}
		// The holder died without an outcome: take the key over, if no one
		// else did first.
		if _, err := s.kv.Update(ctx, key, mine, entry.Revision()); err == nil {
			return nil, nil
		}
	}
	return nil, domain.Errorf(domain.ECONFLICT, "a request with this Idempotency-Key is still in progress; retry shortly")
}

// Complete stores the response of the request that holds key.
func (s *Store) Complete(ctx context.Context, key, fp string, response []byte) error {
	b, err := json.Marshal(record{Fingerprint: fp, Done: true, ClaimedAt: s.cfg.Now().UTC(), Response: response})
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	return nil
}

// Release gives key up without an outcome, so that a retry runs the request.
func (s *Store) Release(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, njs.ErrKeyNotFound) {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}
