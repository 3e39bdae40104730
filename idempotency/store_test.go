package idempotency_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/anomalyd/anomalyd/idempotency"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newStore(t *testing.T, c *clock) *idempotency.Store {
	t.Helper()
	js := jetstreamtest.JetStream(t)
	s, err := idempotency.New(context.Background(), js, idempotency.Config{Now: c.Now, PendingTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClaimLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(t, c)

	if got, err := s.Claim(ctx, "k1", "fp"); err != nil || got != nil {
		t.Fatalf("first claim = %q, %v; want it held", got, err)
	}
	t.Run("ConflictWhileInProgress", func(t *testing.T) {
		if _, err := s.Claim(ctx, "k1", "fp"); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("err = %v, want CONFLICT", err)
		}
	})
	t.Run("MismatchWithOtherFingerprint", func(t *testing.T) {
		if _, err := s.Claim(ctx, "k1", "other"); domain.ErrorCode(err) != domain.EIDEMPOTENCY {
			t.Fatalf("err = %v, want IDEMPOTENCY_MISMATCH", err)
		}
	})
	t.Run("StaleClaimTakenOver", func(t *testing.T) {
		c.Add(2 * time.Minute)
		if got, err := s.Claim(ctx, "k1", "fp"); err != nil || got != nil {
			t.Fatalf("claim after the holder died = %q, %v; want it held", got, err)
		}
		if _, err := s.Claim(ctx, "k1", "fp"); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("the takeover is a fresh claim: err = %v, want CONFLICT", err)
		}
	})
	t.Run("CompletedResponseReturned", func(t *testing.T) {
		if err := s.Complete(ctx, "k1", "fp", []byte(`{"status":201}`)); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Hour) // a completed key does not go stale
		got, err := s.Claim(ctx, "k1", "fp")
		if err != nil || string(got) != `{"status":201}` {
			t.Fatalf("claim after completion = %q, %v", got, err)
		}
		if _, err := s.Claim(ctx, "k1", "other"); domain.ErrorCode(err) != domain.EIDEMPOTENCY {
			t.Fatalf("err = %v, want IDEMPOTENCY_MISMATCH", err)
		}
	})
	t.Run("ReleasedKeyCanBeClaimedAgain", func(t *testing.T) {
		if _, err := s.Claim(ctx, "k2", "fp"); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "k2"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Claim(ctx, "k2", "another"); err != nil || got != nil {
			t.Fatalf("claim after release = %q, %v", got, err)
		}
	})
}

func TestConcurrentClaimsHaveOneHolder(t *testing.T) {
	s := newStore(t, &clock{now: time.Now()})
	const n = 20
	var wg sync.WaitGroup
	held := make(chan bool, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Claim(context.Background(), "race", "fp")
			held <- err == nil && got == nil
		}()
	}
	wg.Wait()
	close(held)
	count := 0
	for h := range held {
		if h {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d requests hold the key, want 1", count)
	}
}
