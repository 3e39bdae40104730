// Package projections builds the read side from the event log: the anomaly read
// model that the API serves, and the effects publisher that tells agent-control
// subscribers what to do. Each is a Projector driven by a Runner.
package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/eventstore"
)

// Projector folds events, in the store's global order, into something.
type Projector interface {
	// Apply folds one event. An error stops the runner: a projection that cannot
	// fold an event must not go on serving as if it had.
	Apply(ctx context.Context, r eventstore.Recorded) error
}

// Settler is a Projector whose Apply may return before the work it started for
// an event is done (the effects publisher: an effect is sent, its
// acknowledgement comes later). It reports, through the function given to
// OnSettled, the position up to which every event's work is done; the runner
// then counts an event as applied only from that report.
type Settler interface {
	Projector
	// OnSettled sets the function the projector calls, from any goroutine and
	// with positions that only grow, when the settled position moves.
	OnSettled(func(pos uint64))
}

// Runner feeds a projector from a subscription to the whole log, starting at the
// first event, and tells waiters how far it has got. A dropped subscription is
// resumed after the last folded event, so nothing is lost or applied twice.
type Runner struct {
	name   string
	store  eventstore.Store
	proj   Projector
	logger *slog.Logger
	folded uint64 // the last event Apply returned for; used by Run only
	settle bool   // proj is a Settler: pos moves with its reports, not with Apply

	mu   sync.Mutex
	pos  uint64   // the last event applied, its work done
	last EventRef // the last event Apply returned for
	// waiting are the WaitFor calls not yet answered, by position: an
	// advance wakes only those it reaches, not every waiter on every event.
	waiting []waiter
	failed  error // set when the projector failed; the runner has stopped
	done    chan struct{}
}

// NewRunner returns a runner that feeds proj from store.
func NewRunner(name string, store eventstore.Store, proj Projector, logger *slog.Logger) *Runner {
	r := &Runner{name: name, store: store, proj: proj, logger: logger, done: make(chan struct{})}
	if s, ok := proj.(Settler); ok {
		r.settle = true
		s.OnSettled(r.advance)
	}
	return r
}

// ErrStopped is returned by WaitFor once the runner has stopped.
var ErrStopped = errors.New("projection stopped")

// Run applies events until ctx ends (it then returns nil) or the projector fails
// (it returns that error). Subscription failures are retried with backoff.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.done)
	const firstBackoff = 50 * time.Millisecond
	backoff := firstBackoff
	for {
		from := r.folded
		err := r.store.Subscribe(ctx, from, func(rec eventstore.Recorded) error {
			if rec.Position <= r.folded {
				return nil // already applied before a resubscription
			}
			if err := r.proj.Apply(ctx, rec); err != nil {
				return &projectorError{err: err, pos: rec.Position}
			}
			r.folded = rec.Position
			r.mu.Lock()
			r.last = refOf(rec)
			if !r.settle {
				r.advanceLocked(rec.Position)
			}
			r.mu.Unlock()
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		var pe *projectorError
		if errors.As(err, &pe) {
			r.fail(pe)
			r.logger.Error("projection stopped", "projection", r.name, "position", pe.pos, "err", pe.err)
			return pe
		}
		if r.folded > from {
			backoff = firstBackoff // it made progress: a fresh failure, not a persisting one
		}
		r.logger.Warn("projection subscription dropped; resubscribing", "projection", r.name,
			"position", r.folded, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

type projectorError struct {
	err error
	pos uint64
}

func (e *projectorError) Error() string {
	return fmt.Sprintf("apply event at position %d: %v", e.pos, e.err)
}
func (e *projectorError) Unwrap() error { return e.err }

// StartAfter makes Run begin after the event at pos instead of at the first
// event, for a projector that was fed up to pos otherwise (see
// AgentsWithEffects). It must be called before Run.
func (r *Runner) StartAfter(pos uint64) {
	r.folded = pos
	if !r.settle {
		r.advance(pos)
	}
}

// StartAfterEvent is StartAfter for a projector fed up to and including the
// event last, as read back from a snapshot: LastFolded returns last until Run
// folds another.
func (r *Runner) StartAfterEvent(last EventRef) {
	r.mu.Lock()
	r.last = last
	r.mu.Unlock()
	r.StartAfter(last.Position)
}

// Err returns the projector's error once it has failed, and nil before.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// LastFolded returns the last event the projector folded; its Position is 0
// when it has folded none.
func (r *Runner) LastFolded() EventRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Name returns the name the runner was built with.
func (r *Runner) Name() string { return r.name }

// Position returns the position of the last event applied (for a Settler, with
// its work done).
func (r *Runner) Position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// waiter is one WaitFor call: ch is closed once the event at pos is applied
// or the runner has failed.
type waiter struct {
	pos uint64
	ch  chan struct{}
}

func (r *Runner) advance(pos uint64) {
	r.mu.Lock()
	r.advanceLocked(pos)
	r.mu.Unlock()
}

// advanceLocked moves the position to pos and wakes the waiters it reaches.
// r.mu is held.
func (r *Runner) advanceLocked(pos uint64) {
	r.pos = max(r.pos, pos)
	n := 0
	for n < len(r.waiting) && r.waiting[n].pos <= r.pos {
		close(r.waiting[n].ch)
		n++
	}
	r.waiting = r.waiting[n:]
}

func (r *Runner) fail(err error) {
	r.mu.Lock()
	r.failed = err
	for _, w := range r.waiting {
		close(w.ch)
	}
	r.waiting = nil
	r.mu.Unlock()
}

// WaitFor blocks until the event at position pos has been applied. It returns
// ctx's error if ctx ends first and ErrStopped if the projector has failed.
func (r *Runner) WaitFor(ctx context.Context, pos uint64) error {
	r.mu.Lock()
	if r.pos >= pos {
		r.mu.Unlock()
		return nil
	}
	if r.failed != nil {
		defer r.mu.Unlock()
		return r.failedLocked()
	}
	w := waiter{pos: pos, ch: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(r.waiting, pos, func(w waiter, pos uint64) int { return cmp.Compare(w.pos, pos) })
	r.waiting = slices.Insert(r.waiting, i, w)
	r.mu.Unlock()
	select {
	case <-w.ch:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.pos >= pos {
			return nil
		}
		return r.failedLocked()
	case <-ctx.Done():
		r.forget(w)
		return ctx.Err()
	case <-r.done:
		r.forget(w)
		return fmt.Errorf("%w: %s", ErrStopped, r.name)
	}
}

// failedLocked is WaitFor's error once the projector has failed. r.mu is held.
func (r *Runner) failedLocked() error {
	return fmt.Errorf("%w: %s: %v", ErrStopped, r.name, r.failed)
}

// forget removes a waiter that gave up, unless an advance took it already.
func (r *Runner) forget(w waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.IndexFunc(r.waiting, func(o waiter) bool { return o.ch == w.ch }); i >= 0 {
		r.waiting = slices.Delete(r.waiting, i, i+1)
	}
}

// CatchUp waits until the runner has applied every event that was in the store
// when it was called.
func (r *Runner) CatchUp(ctx context.Context) error {
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("%s: read head: %w", r.name, err)
	}
	return r.WaitFor(ctx, head)
}
