// Package eventstoretest is the conformance suite that every eventstore.Store
// backend runs, so that all backends keep the port's promises the same way.
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
)

// guard bounds every wait, only so that a broken store fails instead of hanging.
const guard = 10 * time.Second

// Run runs the conformance suite against the stores newStore returns. newStore
// must return an empty store on each call and arrange its own cleanup with
// t.Cleanup. Each subtest uses its own random tenant and stream ids.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"AppendedEventsReadBackInOrder", testReadBack},
		{"ReadAfterVersionReturnsOnlyLaterEvents", testReadAfter},
		{"UnknownStreamReadsEmpty", testUnknownStream},
		{"StaleExpectedVersionConflicts", testStaleVersion},
		{"OneOfConcurrentAppendsWins", testConcurrentAppends},
		{"RetriedAppendIsIdempotent", testRetry},
		{"SameIDUnderTwoTenantsIsTwoStreams", testTenantIsolation},
		{"VersionNotFollowingExpectedIsInvalid", testBadVersion},
		{"HeadIsZeroWhenEmptyThenLastPosition", testHead},
		{"SubscribeFromZeroDeliversAllInOrder", testSubscribeAll},
		{"SubscribeFromCheckpointDeliversLaterAndLiveEvents", testSubscribeCheckpoint},
		{"SubscribeStopsWithHandlerError", testSubscribeHandlerError},
		{"SubscribeReturnsWhenCancelled", testSubscribeCancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func testReadBack(t *testing.T, s eventstore.Store) {
	stream := newStream()
	want := appendN(t, s, stream, 0, 4)

	got := read(t, s, stream, 0)
	assertEvents(t, got, want)
	for i, r := range got {
		if r.Version != uint64(i+1) {
			t.Errorf("event %d: version %d, want %d", i, r.Version, i+1)
		}
		if r.Position != want[i].Position {
			t.Errorf("event %d: position %d, Append returned %d", i, r.Position, want[i].Position)
		}
		if i > 0 && r.Position <= got[i-1].Position {
			t.Errorf("positions not strictly increasing: %d after %d", r.Position, got[i-1].Position)
		}
	}
}

func testReadAfter(t *testing.T, s eventstore.Store) {
	stream := newStream()
	want := appendN(t, s, stream, 0, 5)
	for _, after := range []uint64{1, 3, 4, 5, 9} {
		t.Run(fmt.Sprintf("After%d", after), func(t *testing.T) {
			var later []eventstore.Recorded
			if after < uint64(len(want)) {
				later = want[after:]
			}
			assertEvents(t, read(t, s, stream, after), later)
		})
	}
}

func testUnknownStream(t *testing.T, s eventstore.Store) {
	appendN(t, s, newStream(), 0, 1) // Another stream exists.
	if got := read(t, s, newStream(), 0); len(got) != 0 {
		t.Fatalf("unknown stream: got %d events, want none", len(got))
	}
}

func testStaleVersion(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	stream := newStream()
	want := appendN(t, s, stream, 0, 2)
	head := mustHead(t, s)

	for _, expected := range []uint64{0, 1, 3, 7} {
		t.Run(fmt.Sprintf("Expected%d", expected), func(t *testing.T) {
			_, err := s.Append(ctx, expected, newEvent(stream, expected+1))
			assertConcurrency(t, err, stream, expected)
		})
	}
	assertEvents(t, read(t, s, stream, 0), want)
	if got := mustHead(t, s); got != head {
		t.Errorf("Head after failed appends = %d, want %d", got, head)
	}
}

func testConcurrentAppends(t *testing.T, s eventstore.Store) {
	for _, seeded := range []int{0, 1} {
		t.Run(fmt.Sprintf("AtVersion%d", seeded), func(t *testing.T) {
			ctx := testContext(t)
			stream := newStream()
			want := appendN(t, s, stream, 0, seeded)
			expected := uint64(seeded)

			const n = 20
			var (
				start = make(chan struct{})
				wg    sync.WaitGroup
				mu    sync.Mutex
				won   []eventstore.Recorded
				errs  []error
			)
			for range n {
				ev := newEvent(stream, expected+1)
				wg.Go(func() {
					<-start
					r, err := s.Append(ctx, expected, ev)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					} else {
						won = append(won, r)
					}
				})
			}
			close(start)
			wg.Wait()

			if len(won) != 1 {
				t.Fatalf("%d appends succeeded, want exactly 1 (errors: %v)", len(won), errs)
			}
			for _, err := range errs {
				assertConcurrency(t, err, stream, expected)
			}
			assertEvents(t, read(t, s, stream, 0), append(want, won[0]))
		})
	}
}

func testRetry(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	stream := newStream()
	first := newEvent(stream, 1)
	r1, err := s.Append(ctx, 0, first)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}

	again, err := s.Append(ctx, 0, first)
	if err != nil {
		t.Fatalf("retried Append: %v", err)
	}
	if again.Position != r1.Position {
		t.Errorf("retried Append position %d, want %d", again.Position, r1.Position)
	}
	assertEvents(t, read(t, s, stream, 0), []eventstore.Recorded{r1})

	// Still idempotent once the stream has moved on.
	r2 := appendN(t, s, stream, 1, 1)[0]
	again, err = s.Append(ctx, 0, first)
	if err != nil {
		t.Fatalf("Append retried after a later append: %v", err)
	}
	if again.Position != r1.Position {
		t.Errorf("retried Append position %d, want %d", again.Position, r1.Position)
	}
	assertEvents(t, read(t, s, stream, 0), []eventstore.Recorded{r1, r2})
}

func testTenantIsolation(t *testing.T, s eventstore.Store) {
	id := uuid.NewString()
	a := domain.StreamID{Tenant: newTenant(), Category: domain.CategoryAnomaly, ID: id}
	b := domain.StreamID{Tenant: newTenant(), Category: domain.CategoryAnomaly, ID: id}
	wantA := appendN(t, s, a, 0, 2)
	wantB := appendN(t, s, b, 0, 1) // Version 1 again: a separate stream.

	assertEvents(t, read(t, s, a, 0), wantA)
	assertEvents(t, read(t, s, b, 0), wantB)
}

func testBadVersion(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	stream := newStream()
	for _, tc := range []struct {
		name              string
		expected, version uint64
	}{
		{"SameAsExpected", 0, 0},
		{"SkipsAVersion", 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.expected, newEvent(stream, tc.version))
			var derr *domain.Error
			if !errors.As(err, &derr) || derr.Code != domain.EINVALID {
				t.Fatalf("Append = %v, want a *domain.Error with code %s", err, domain.EINVALID)
			}
		})
	}
	if got := read(t, s, stream, 0); len(got) != 0 {
		t.Errorf("stream holds %d events after rejected appends, want none", len(got))
	}
	if got := mustHead(t, s); got != 0 {
		t.Errorf("Head after rejected appends = %d, want 0", got)
	}
}

func testHead(t *testing.T, s eventstore.Store) {
	if got := mustHead(t, s); got != 0 {
		t.Fatalf("Head of empty store = %d, want 0", got)
	}
	appendN(t, s, newStream(), 0, 2)
	last := appendN(t, s, newStream(), 0, 1)[0]
	if got := mustHead(t, s); got != last.Position {
		t.Fatalf("Head = %d, want %d (last appended)", got, last.Position)
	}
}

func testSubscribeAll(t *testing.T, s eventstore.Store) {
	a, b := newStream(), newStream()
	want := interleave(t, s, a, b, 3)

	sub := subscribe(t, s, 0)
	got := sub.take(t, len(want))
	assertEvents(t, got, want)
	sub.assertNextIs(t, s, b, uint64(len(want)/2))
}

func testSubscribeCheckpoint(t *testing.T, s eventstore.Store) {
	a, b := newStream(), newStream()
	stored := interleave(t, s, a, b, 3)
	const k = 2 // Subscribe from the position of the k-th event.
	want := stored[k:]

	sub := subscribe(t, s, stored[k-1].Position)
	got := sub.take(t, 1) // The subscription is running.

	live := make(chan []eventstore.Recorded, 1)
	go func() {
		ctx := testContext(t)
		var recs []eventstore.Recorded
		for v := uint64(4); v <= 6; v++ {
			r, err := s.Append(ctx, v-1, newEvent(a, v))
			if err != nil {
				t.Errorf("live Append: %v", err)
				break
			}
			recs = append(recs, r)
		}
		live <- recs
	}()
	want = append(want, <-live...)
	got = append(got, sub.take(t, len(want)-1)...)
	assertEvents(t, got, want)
	sub.assertNextIs(t, s, b, 3)
}

func testSubscribeHandlerError(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	appendN(t, s, newStream(), 0, 3)

	stop := errors.New("handler failed")
	var calls atomic.Int32
	err := s.Subscribe(ctx, 0, func(eventstore.Recorded) error {
		if calls.Add(1) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Subscribe = %v, want the handler's error", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want 2", n)
	}
}

func testSubscribeCancel(t *testing.T, s eventstore.Store) {
	appendN(t, s, newStream(), 0, 1)
	sub := subscribe(t, s, 0)
	sub.take(t, 1)
	sub.cancel()
	select {
	case <-sub.done:
		if !errors.Is(sub.err, context.Canceled) {
			t.Fatalf("Subscribe after cancel = %v, want context.Canceled", sub.err)
		}
	case <-time.After(guard):
		t.Fatal("Subscribe did not return after its context was cancelled")
	}
}

// subscription is a Subscribe running in the background, its events on a
// channel; err is Subscribe's result once done is closed.
type subscription struct {
	events chan eventstore.Recorded
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

func subscribe(t *testing.T, s eventstore.Store, from uint64) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscription{events: make(chan eventstore.Recorded), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(sub.done)
		sub.err = s.Subscribe(ctx, from, func(r eventstore.Recorded) error {
			select {
			case sub.events <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-sub.done:
		case <-time.After(guard):
			t.Error("Subscribe did not return after its context was cancelled")
		}
	})
	return sub
}

// take receives n events, failing if Subscribe ends or stalls first.
func (sub *subscription) take(t *testing.T, n int) []eventstore.Recorded {
	t.Helper()
	var got []eventstore.Recorded
	for len(got) < n {
		select {
		case r := <-sub.events:
			got = append(got, r)
		case <-sub.done:
			t.Fatalf("Subscribe returned %v after %d of %d events", sub.err, len(got), n)
		case <-time.After(guard):
			t.Fatalf("received %d of %d events before the guard timeout", len(got), n)
		}
	}
	return got
}

// assertNextIs appends one more event to stream (at version+1) and checks that
// it is the next one delivered: nothing was delivered twice in between.
func (sub *subscription) assertNextIs(t *testing.T, s eventstore.Store, stream domain.StreamID, version uint64) {
	t.Helper()
	r, err := s.Append(testContext(t), version, newEvent(stream, version+1))
	if err != nil {
		t.Fatalf("Append sentinel: %v", err)
	}
	assertEvents(t, sub.take(t, 1), []eventstore.Recorded{r})
}

// interleave appends n events to each of a and b, alternating, and returns them
// in the order appended.
func interleave(t *testing.T, s eventstore.Store, a, b domain.StreamID, n int) []eventstore.Recorded {
	t.Helper()
	var out []eventstore.Recorded
	for v := range uint64(n) {
		out = append(out, appendN(t, s, a, v, 1)...)
		out = append(out, appendN(t, s, b, v, 1)...)
	}
	return out
}

// appendN appends n new events to stream, which must be at version from.
func appendN(t *testing.T, s eventstore.Store, stream domain.StreamID, from uint64, n int) []eventstore.Recorded {
	t.Helper()
	ctx := testContext(t)
	var out []eventstore.Recorded
	for v := from; v < from+uint64(n); v++ {
		ev := newEvent(stream, v+1)
		r, err := s.Append(ctx, v, ev)
		if err != nil {
			t.Fatalf("Append(%s, expected %d): %v", stream, v, err)
		}
		if r.Position == 0 {
			t.Fatalf("Append(%s, expected %d): position 0", stream, v)
		}
		r.Event = ev // What was appended is what must read back.
		out = append(out, r)
	}
	return out
}

func read(t *testing.T, s eventstore.Store, stream domain.StreamID, after uint64) []eventstore.Recorded {
	t.Helper()
	got, err := s.ReadStream(testContext(t), stream, after)
	if err != nil {
		t.Fatalf("ReadStream(%s, %d): %v", stream, after, err)
	}
	return got
}

func mustHead(t *testing.T, s eventstore.Store) uint64 {
	t.Helper()
	h, err := s.Head(testContext(t))
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

// assertEvents checks got against want field by field, positions included.
func assertEvents(t *testing.T, got, want []eventstore.Recorded) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d:\ngot  %v\nwant %v", len(got), len(want), summary(got), summary(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Position != w.Position || g.ID != w.ID || g.Type != w.Type || g.Stream != w.Stream ||
			g.Version != w.Version || g.TenantID != w.TenantID || g.Actor != w.Actor {
			t.Errorf("event %d:\ngot  %+v\nwant %+v", i, g, w)
		}
		if _, off := g.OccurredAt.Zone(); !g.OccurredAt.Equal(w.OccurredAt) || off != 0 {
			t.Errorf("event %d: occurred_at %v, want %v in UTC", i, g.OccurredAt, w.OccurredAt)
		}
		if !sameJSON(g.Data, w.Data) {
			t.Errorf("event %d: data %s, want %s", i, g.Data, w.Data)
		}
	}
}

func assertConcurrency(t *testing.T, err error, stream domain.StreamID, expected uint64) {
	t.Helper()
	if !errors.Is(err, domain.ErrConcurrency) {
		t.Fatalf("Append at expected version %d = %v, want a concurrency error", expected, err)
	}
	var cerr *domain.ConcurrencyError
	if !errors.As(err, &cerr) {
		t.Fatalf("Append at expected version %d = %v, want a *domain.ConcurrencyError", expected, err)
	}
	if cerr.Stream != stream || cerr.Expected != expected {
		t.Errorf("ConcurrencyError names %s at %d, want %s at %d", cerr.Stream, cerr.Expected, stream, expected)
	}
}

func summary(rs []eventstore.Recorded) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s@%d#%d", r.Stream, r.Version, r.Position)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func newTenant() string { return "t" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] }

func newStream() domain.StreamID {
	return domain.AnomalyStream(newTenant(), uuid.New())
}

// newEvent returns a distinct event for stream at version, with every envelope
// field set so that a lossy store shows.
func newEvent(stream domain.StreamID, version uint64) domain.Event {
	id := uuid.New()
	return domain.Event{
		ID:         id,
		Type:       "test.happened",
		Stream:     stream,
		Version:    version,
		TenantID:   stream.Tenant,
		OccurredAt: time.Now().UTC().Truncate(time.Microsecond),
		Actor:      domain.Actor{ID: "tester-" + id.String()[:8], Kind: domain.ActorAPIKey},
		Data:       json.RawMessage(fmt.Sprintf(`{"version":%d,"note":"ünïcode & <html>","nested":{"ok":true}}`, version)),
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	t.Cleanup(cancel)
	return ctx
}
