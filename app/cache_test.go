package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
)

// countingReads counts the stream reads a service makes.
type countingReads struct {
	eventstore.Store
	reads atomic.Int64
}

func (c *countingReads) ReadStream(ctx context.Context, s domain.StreamID, after uint64) ([]eventstore.Recorded, error) {
	c.reads.Add(1)
	return c.Store.ReadStream(ctx, s, after)
}

// twoStores returns two stores on one embedded server, each with its own
// cache of stream heads: two instances of the service, or a writer behind the
// service's back.
func twoStores(t *testing.T) (*jetstream.Store, *jetstream.Store) {
	t.Helper()
	js := jetstreamtest.JetStream(t)
	a, err := jetstream.New(t.Context(), js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(t.Context(), js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

var resolveMitigated = domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated}

func streamOf(id uuid.UUID) domain.StreamID { return domain.AnomalyStream(benchPrincipal.Tenant, id) }

// A command on an anomaly the service reported (or loaded) decides on the
// state it kept and appends without reading the stream; without the cache it
// reads it.
func TestCommandOnAKnownAnomalyDoesNotReadItsStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []app.Option
		reads int64
		stats app.CacheStats
	}{
		{"cached", nil, 0, app.CacheStats{Hits: 1, Loads: 0, Kept: 0}}, // resolved: nothing left to keep
		{"no cache", []app.Option{app.WithCacheSize(0)}, 1, app.CacheStats{Hits: 0, Loads: 1, Kept: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &countingReads{Store: jetstreamtest.Store(t)}
			svc := app.NewService(store, tc.opts...)
			id := reportOne(t, svc, t.Context())
			store.reads.Store(0)
			res, err := svc.Resolve(t.Context(), benchPrincipal, id, resolveMitigated)
			if err != nil || res.Anomaly.Status != domain.StatusResolved || res.Anomaly.Version != 2 {
				t.Fatalf("Resolve = %+v, %v", res.Anomaly, err)
			}
			if n := store.reads.Load(); n != tc.reads {
				t.Fatalf("Resolve read %d streams, want %d", n, tc.reads)
			}
			if st := svc.CacheStats(); st != tc.stats {
				t.Fatalf("CacheStats = %+v, want %+v", st, tc.stats)
			}
			recs, err := store.Store.ReadStream(t.Context(), streamOf(id), 0)
			if err != nil {
				t.Fatal(err)
			}
			evs := make([]domain.Event, len(recs))
			for i, r := range recs {
				evs[i] = r.Event
			}
			if err := domain.VerifyChain(evs); err != nil || len(evs) != 2 {
				t.Fatalf("stream: %d events, chain %v", len(evs), err)
			}
		})
	}
}

// The service keeps only states a command can still change: a resolve or a
// dismissal forgets the anomaly, and a command on it afterwards reads its
// stream and is refused with the status the store has, as it would be on a
// kept state after a fresh load. A terminal anomaly loaded for a command is
// not kept either.
func TestTerminalAnomaliesAreNotKept(t *testing.T) {
	store := &countingReads{Store: jetstreamtest.Store(t)}
	svc := app.NewService(store)
	resolved, dismissed, open := reportOne(t, svc, t.Context()), reportOne(t, svc, t.Context()), reportOne(t, svc, t.Context())
	if k := svc.CacheStats().Kept; k != 3 {
		t.Fatalf("%d states kept after three reports, want 3", k)
	}
	if _, err := svc.Resolve(t.Context(), benchPrincipal, resolved, resolveMitigated); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Dismiss(t.Context(), benchPrincipal, dismissed, domain.DismissAnomaly{Reason: "duplicate report"}); err != nil {
		t.Fatal(err)
	}
	if k := svc.CacheStats().Kept; k != 1 {
		t.Fatalf("%d states kept after a resolve and a dismissal, want 1 (the open one)", k)
	}
	for _, id := range []uuid.UUID{resolved, dismissed} {
		store.reads.Store(0)
		_, err := svc.Resolve(t.Context(), benchPrincipal, id, resolveMitigated)
		if domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("Resolve of a terminal anomaly: %v, want CONFLICT", err)
		}
		if n := store.reads.Load(); n != 1 {
			t.Fatalf("the refusal read %d streams, want 1", n)
		}
	}
	if st := svc.CacheStats(); st.Kept != 1 {
		t.Fatalf("CacheStats = %+v after commands on terminal anomalies, want 1 kept", st)
	}
	// The one kept is the open anomaly: its resolve reads nothing.
	store.reads.Store(0)
	if _, err := svc.Resolve(t.Context(), benchPrincipal, open, resolveMitigated); err != nil {
		t.Fatal(err)
	}
	if n, k := store.reads.Load(), svc.CacheStats().Kept; n != 0 || k != 0 {
		t.Fatalf("the open anomaly's resolve read %d streams and left %d kept, want 0 and 0", n, k)
	}
}

// Another instance changes an anomaly this service has cached: the append on
// the cached state is refused by the store, and the command is decided again
// on the stream as it is, for an outcome and a chain as if nothing were cached.
func TestCachedAnomalyChangedByAnotherInstance(t *testing.T) {
	storeA, storeB := twoStores(t)
	a, b := app.NewService(storeA), app.NewService(storeB)
	ctx := t.Context()

	// B moves the anomaly on; A's resolve then applies to the investigated anomaly.
	bob := "bob"
	id := reportOne(t, a, ctx)
	if _, err := b.Investigate(ctx, benchPrincipal, id, domain.InvestigateAnomaly{Assignee: &bob}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Resolve(ctx, benchPrincipal, id, resolveMitigated)
	if err != nil || res.Anomaly.Version != 3 || res.Anomaly.Assignee == nil || *res.Anomaly.Assignee != "bob" {
		t.Fatalf("resolve after another instance's change = %+v, %v; want version 3, assigned to bob", res.Anomaly, err)
	}
	checkStream(t, storeA, id, domain.EventAnomalyReported, domain.EventAnomalyInvestigationStarted, domain.EventAnomalyResolved)

	// B closes the anomaly; A's resolve is then a conflict, as it would be
	// without the cache, and nothing is recorded.
	id = reportOne(t, a, ctx)
	if _, err := b.Dismiss(ctx, benchPrincipal, id, domain.DismissAnomaly{Reason: "duplicate"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, benchPrincipal, id, resolveMitigated); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("resolve of an anomaly another instance closed: %v, want CONFLICT", err)
	}
	checkStream(t, storeA, id, domain.EventAnomalyReported, domain.EventAnomalyDismissed)
}

// An event forged into the stream of a cached anomaly, behind the service's
// back: the append on the cached state is refused, and the fresh load finds
// the broken chain; the service refuses to decide.
func TestCachedAnomalyWithAForgedEventIsRefused(t *testing.T) {
	store, behind := twoStores(t)
	svc := app.NewService(store)
	ctx := t.Context()
	id := reportOne(t, svc, ctx)

	recs, err := behind.ReadStream(ctx, streamOf(id), 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadStream = %d events, %v", len(recs), err)
	}
	// A dismissal that never happened, with a self-consistent hash but not
	// chained to the real history.
	a, err := domain.LoadAnomaly([]domain.Event{recs[0].Event})
	if err != nil {
		t.Fatal(err)
	}
	m := domain.Meta{EventID: uuid.New(), At: recs[0].OccurredAt, Actor: benchPrincipal.Actor}
	if err := a.Dismiss(domain.DismissAnomaly{Reason: "nothing to see"}, m); err != nil {
		t.Fatal(err)
	}
	forged := a.Changes()[0]
	forged.PrevHash = strings.Repeat("0", 64)
	forged.Hash = domain.HashEvent(forged)
	if _, err := behind.Append(ctx, 1, forged); err != nil {
		t.Fatal(err)
	}

	_, err = svc.Resolve(ctx, benchPrincipal, id, resolveMitigated)
	if domain.ErrorCode(err) != domain.EINTERNAL || !strings.Contains(err.Error(), "tamper") {
		t.Fatalf("resolve of a cached anomaly with a forged event: %v, want INTERNAL_ERROR naming the tampering", err)
	}
	checkStream(t, store, id, domain.EventAnomalyReported, domain.EventAnomalyDismissed)
}

// Concurrent commands on one cached anomaly: exactly one wins, the others
// are conflicts, and the stream holds one resolution.
func TestConcurrentCommandsOnACachedAnomaly(t *testing.T) {
	svc, store := newServiceAndStore(t)
	id := reportOne(t, svc, t.Context())
	const n = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := svc.Resolve(t.Context(), benchPrincipal, id, resolveMitigated)
			switch {
			case err == nil:
				wins.Add(1)
			case domain.ErrorCode(err) == domain.ECONFLICT:
				conflicts.Add(1)
			default:
				t.Errorf("Resolve: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("%d wins and %d conflicts, want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
	checkStream(t, store, id, domain.EventAnomalyReported, domain.EventAnomalyResolved)
}

// A command the cached state refuses is decided again on the stream before
// the refusal is answered, and records nothing.
func TestRefusalOnACachedAnomalyIsCheckedAgainstTheStore(t *testing.T) {
	store := &countingReads{Store: jetstreamtest.Store(t)}
	svc := app.NewService(store)
	id := reportOne(t, svc, t.Context())
	store.reads.Store(0)
	_, err := svc.Resolve(t.Context(), benchPrincipal, id, domain.ResolveAnomaly{Resolution: "fixed_it"})
	if domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("Resolve with an unknown resolution: %v, want INVALID_INPUT", err)
	}
	if n := store.reads.Load(); n != 1 {
		t.Fatalf("the refusal read %d streams, want 1", n)
	}
	checkStream(t, store.Store, id, domain.EventAnomalyReported)
}

// An append whose outcome is unknown (here: refused by a store that fails)
// leaves the state unknown: the next command reads the stream.
func TestFailedAppendForgetsTheCachedState(t *testing.T) {
	store := &failingAppends{countingReads: countingReads{Store: jetstreamtest.Store(t)}}
	svc := app.NewService(store)
	id := reportOne(t, svc, t.Context())
	store.fail.Store(true)
	if _, err := svc.Resolve(t.Context(), benchPrincipal, id, resolveMitigated); err == nil {
		t.Fatal("Resolve succeeded on a failing store")
	}
	store.fail.Store(false)
	store.reads.Store(0)
	if _, err := svc.Resolve(t.Context(), benchPrincipal, id, resolveMitigated); err != nil {
		t.Fatal(err)
	}
	if n := store.reads.Load(); n != 1 {
		t.Fatalf("the resolve after a failed append read %d streams, want 1", n)
	}
}

type failingAppends struct {
	countingReads
	fail atomic.Bool
}

func (f *failingAppends) Append(ctx context.Context, expected uint64, ev domain.Event) (eventstore.Recorded, error) {
	if f.fail.Load() {
		return eventstore.Recorded{}, errors.New("store unavailable")
	}
	return f.countingReads.Append(ctx, expected, ev)
}

func checkStream(t *testing.T, store eventstore.Store, id uuid.UUID, types ...string) {
	t.Helper()
	recs, err := store.ReadStream(t.Context(), streamOf(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(recs))
	for i, r := range recs {
		got[i] = r.Type
	}
	if strings.Join(got, " ") != strings.Join(types, " ") {
		t.Fatalf("stream of %s holds %v, want %v", id, got, types)
	}
}
