package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

var (
	quiet = slog.New(slog.DiscardHandler)
	actor = domain.Actor{ID: "key_test", Kind: domain.ActorAPIKey}
)

func newStore(t *testing.T) *jetstream.Store { return newStoreB(t) }

func newStoreB(t testing.TB) *jetstream.Store {
	t.Helper()
	return jetstreamtest.Store(t)
}

// history builds the events of anomalies on one agent through the domain, so
// that the projections see exactly what the command side records.
type history struct {
	t         *testing.T
	tenant    string
	agent     uuid.UUID
	anomalies []*domain.Anomaly
	events    []domain.Event
	n         int
}

func (h *history) meta() domain.Meta {
	h.n++
	return domain.Meta{EventID: uuid.New(), At: time.Unix(int64(h.n), 0), Actor: actor}
}

func (h *history) report(sev domain.Severity) {
	h.t.Helper()
	a, err := domain.Report(domain.ReportAnomaly{Tenant: h.tenant, AnomalyID: uuid.New(), AgentID: h.agent,
		AnomalyType: "rate_spike", Severity: sev}, domain.DefaultPolicy(), h.meta())
	if err != nil {
		h.t.Fatal(err)
	}
	h.anomalies = append(h.anomalies, a)
	h.events = append(h.events, a.Changes()...)
}

func (h *history) resolve(i int, r domain.Resolution) {
	h.t.Helper()
	a := h.anomalies[i]
	n := len(a.Changes())
	if err := a.Resolve(domain.ResolveAnomaly{Resolution: r}, h.meta()); err != nil {
		h.t.Fatal(err)
	}
	h.events = append(h.events, a.Changes()[n:]...)
}

// appendTo appends the events to store and returns their positions.
func (h *history) appendTo(store eventstore.Store) []uint64 {
	h.t.Helper()
	positions := make([]uint64, 0, len(h.events))
	for _, e := range h.events {
		r, err := store.Append(h.t.Context(), e.Version-1, e)
		if err != nil {
			h.t.Fatal(err)
		}
		positions = append(positions, r.Position)
	}
	return positions
}

// recorded gives the events positions 1..n, as a store would.
func (h *history) recorded() []eventstore.Recorded {
	out := make([]eventstore.Recorded, len(h.events))
	for i, e := range h.events {
		out[i] = eventstore.Recorded{Event: e, Position: uint64(i + 1)}
	}
	return out
}

// memorySink stores effects as the JetStream effects stream does: each send
// names the sequence it must follow, a duplicate id is acknowledged without
// being stored again, and answers arrive asynchronously.
type memorySink struct {
	mu        sync.Mutex
	published []projections.Effect
	failNext  int           // how many of the next sends fail
	loseNext  int           // how many of the next sends vanish: not stored, never answered
	muteNext  int           // how many of the next sends are stored but never answered
	hold      chan struct{} // while open, answers wait
	lastErr   error         // Last fails with it
}

func (s *memorySink) Send(_ context.Context, e projections.Effect, after uint64, done func(error)) {
	s.mu.Lock()
	var err error
	answer := true
	switch {
	case s.loseNext > 0:
		s.loseNext--
		s.mu.Unlock()
		return
	case s.muteNext > 0 && after == uint64(len(s.published)):
		s.muteNext--
		s.published = append(s.published, e)
		answer = false
	case s.failNext > 0:
		s.failNext--
		err = errors.New("nats down")
	case after != uint64(len(s.published)):
		err = fmt.Errorf("wrong last sequence: %d, stored %d", after, len(s.published))
	case !slices.ContainsFunc(s.published, func(p projections.Effect) bool { return p.ID == e.ID }):
		s.published = append(s.published, e)
	}
	hold := s.hold
	s.mu.Unlock()
	if !answer {
		return
	}
	go func() {
		if hold != nil {
			<-hold
		}
		done(err)
	}()
}

func (s *memorySink) Last(context.Context) (uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil {
		return 0, 0, s.lastErr
	}
	if len(s.published) == 0 {
		return 0, 0, nil
	}
	return uint64(len(s.published)), s.published[len(s.published)-1].CausePosition, nil
}

func (s *memorySink) effects() []projections.Effect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.published)
}

// applyAll folds recs into p and waits until their effects are stored.
func applyAll(t *testing.T, p *projections.Effects, recs []eventstore.Recorded) {
	t.Helper()
	for _, r := range recs {
		if err := p.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("effects not stored: %v", err)
	}
}

func types(t *testing.T, effects []projections.Effect) []string {
	t.Helper()
	var out []string
	for _, e := range effects {
		var ce projections.CloudEvent
		if err := json.Unmarshal(e.Body, &ce); err != nil {
			t.Fatal(err)
		}
		out = append(out, ce.Type)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEffectsPublishedOnlyOnStatusChange(t *testing.T) {
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityMedium)              // throttled
	h.report(domain.SeverityHigh)                // suspended
	h.report(domain.SeverityLow)                 // no change
	h.resolve(1, domain.ResolutionFalsePositive) // throttled
	h.resolve(2, domain.ResolutionMitigated)     // no change
	h.resolve(0, domain.ResolutionAcceptedRisk)  // restored
	h.report(domain.SeverityCritical)            // quarantined
	h.resolve(3, domain.ResolutionAgentRevoked)  // revoked
	sink := &memorySink{}
	applyAll(t, projections.NewEffects(sink, quiet), h.recorded())
	want := []string{"agent.throttled", "agent.suspended", "agent.throttled", "agent.restored", "agent.quarantined", "agent.revoked"}
	if got := types(t, sink.effects()); !equal(got, want) {
		t.Fatalf("effects = %v, want %v", got, want)
	}
	for _, e := range sink.effects() {
		if e.Subject != projections.EffectSubject("acme", h.agent) {
			t.Fatalf("subject = %s", e.Subject)
		}
	}
}

// agentHistory builds n anomalies on each of agents agents, reported high
// (suspend) and resolved as false positives (restore): 2*n*agents effects.
func agentHistory(t *testing.T, agents, n int) ([]eventstore.Recorded, []string) {
	var recs []eventstore.Recorded
	var want []string
	for range agents {
		h := &history{t: t, tenant: "acme", agent: uuid.New()}
		for i := range n {
			h.report(domain.SeverityHigh)
			h.resolve(i, domain.ResolutionFalsePositive)
			want = append(want, "agent.suspended", "agent.restored")
		}
		recs = append(recs, h.recorded()...)
	}
	for i := range recs {
		recs[i].Position = uint64(i + 1)
	}
	return recs, want
}

func checkOnceInOrder(t *testing.T, got []projections.Effect, want []string) {
	t.Helper()
	if types := types(t, got); !equal(types, want) {
		t.Fatalf("effects = %v, want %v", types, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].CausePosition <= got[i-1].CausePosition {
			t.Fatalf("effect %d (cause %d) stored after cause %d: repeated or out of order",
				i, got[i].CausePosition, got[i-1].CausePosition)
		}
	}
}

func TestEffectsResumeAfterLastStoredEffect(t *testing.T) {
	recs, want := agentHistory(t, 3, 2)
	for _, cut := range []int{1, 5, len(recs) - 1} {
		sink := &memorySink{}
		// The first run published the effects of the events before cut and crashed.
		applyAll(t, projections.NewEffects(sink, quiet), recs[:cut])
		// A new run folds from the first event again but publishes only later effects.
		applyAll(t, projections.NewEffects(sink, quiet), recs)
		checkOnceInOrder(t, sink.effects(), want)
	}
}

// A failed send keeps the later ones of the window out; the publisher sends
// them again from the last stored effect, so nothing is lost, repeated or
// reordered.
func TestEffectsFailedSendIsRetriedInOrder(t *testing.T) {
	recs, want := agentHistory(t, 20, 10) // 400 effects: more than one window
	for _, failAfter := range []int{0, 7, projections.Window - 1, 390} {
		sink := &memorySink{}
		p := projections.NewEffects(sink, quiet)
		for i, r := range recs {
			if i == failAfter {
				sink.mu.Lock()
				sink.failNext = 3
				sink.mu.Unlock()
			}
			if err := p.Apply(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if err := p.Flush(ctx); err != nil {
			t.Fatalf("fail after %d: effects not stored: %v", failAfter, err)
		}
		cancel()
		checkOnceInOrder(t, sink.effects(), want)
	}
}

// An acknowledgement that never comes counts as a failure once the timeout
// passes: the publisher asks the sink what it holds and sends the rest again.
// A publisher idle for longer than the timeout is not affected by it.
func TestEffectsMissingAcknowledgement(t *testing.T) {
	recs, want := agentHistory(t, 5, 4)
	for _, tc := range []struct {
		name string
		sink *memorySink
	}{
		{"lost before it was stored", &memorySink{loseNext: 2}},
		{"stored, answer lost", &memorySink{muteNext: 2}},
		{"none lost", &memorySink{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := projections.NewEffects(tc.sink, quiet)
			p.SetAckTimeout(30 * time.Millisecond)
			applyAll(t, p, recs[:len(recs)/2])
			time.Sleep(100 * time.Millisecond) // idle past the timeout
			applyAll(t, p, recs[len(recs)/2:])
			checkOnceInOrder(t, tc.sink.effects(), want)
		})
	}
}

// Two publishers of the same log (two instances, or a run that overlaps the
// previous one) store each effect once, in order.
func TestEffectsTwoPublishersStoreEachEffectOnce(t *testing.T) {
	recs, want := agentHistory(t, 10, 10)
	sink := &memorySink{}
	a, b := projections.NewEffects(sink, quiet), projections.NewEffects(sink, quiet)
	var wg sync.WaitGroup
	for _, p := range []*projections.Effects{a, b} {
		wg.Go(func() { applyAll(t, p, recs) })
	}
	wg.Wait()
	checkOnceInOrder(t, sink.effects(), want)
}

func TestEffectsLastUnreadableStopsTheProjection(t *testing.T) {
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityHigh)
	sink := &memorySink{lastErr: errors.New("nats down")}
	if err := projections.NewEffects(sink, quiet).Apply(t.Context(), h.recorded()[0]); err == nil {
		t.Fatal("the publisher started without knowing what is stored")
	}
}

// The runner of the effects publisher counts an event as applied only once its
// effect is stored.
func TestEffectsRunnerPositionWaitsForTheAcknowledgement(t *testing.T) {
	store := newStore(t)
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityHigh) // suspended
	h.report(domain.SeverityLow)  // no change
	positions := h.appendTo(store)
	sink := &memorySink{hold: make(chan struct{})}
	runner := projections.NewRunner("effects", store, projections.NewEffects(sink, quiet), quiet)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = runner.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer wcancel()
	if err := runner.WaitFor(wctx, positions[0]); err == nil {
		t.Fatalf("event %d counted as applied before its effect was acknowledged", positions[0])
	}
	if pos := runner.Position(); pos >= positions[0] {
		t.Fatalf("position = %d before the acknowledgement, want < %d", pos, positions[0])
	}
	close(sink.hold)
	wctx, wcancel = context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if err := runner.WaitFor(wctx, positions[1]); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.effects()); got != 1 {
		t.Fatalf("%d effects stored, want 1", got)
	}
}

func TestEffectsKeepTenantsApart(t *testing.T) {
	agent := uuid.New()
	a := &history{t: t, tenant: "acme", agent: agent}
	b := &history{t: t, tenant: "globex", agent: agent}
	a.report(domain.SeverityHigh)
	b.report(domain.SeverityMedium)
	a.resolve(0, domain.ResolutionFalsePositive)
	recs := []eventstore.Recorded{
		{Event: a.events[0], Position: 1}, {Event: b.events[0], Position: 2}, {Event: a.events[1], Position: 3},
	}
	sink := &memorySink{}
	applyAll(t, projections.NewEffects(sink, quiet), recs)
	got := sink.effects()
	// The same agent id under globex stays throttled: acme's restore is acme's alone.
	if types := types(t, got); !equal(types, []string{"agent.suspended", "agent.throttled", "agent.restored"}) {
		t.Fatalf("effects = %v", types)
	}
	if got[1].Subject != projections.EffectSubject("globex", agent) ||
		got[2].Subject != projections.EffectSubject("acme", agent) {
		t.Fatalf("subjects = %s, %s", got[1].Subject, got[2].Subject)
	}
}

// flakyStore drops the subscription after every few events, as a lost NATS
// connection would, so the runner has to resume.
type flakyStore struct {
	eventstore.Store
	every int
}

var errDropped = errors.New("subscription dropped")

func (s flakyStore) Subscribe(ctx context.Context, from uint64, fn func(eventstore.Recorded) error) error {
	n := 0
	err := s.Store.Subscribe(ctx, from, func(r eventstore.Recorded) error {
		if err := fn(r); err != nil {
			return err
		}
		if n++; n == s.every {
			return errDropped
		}
		return nil
	})
	return err
}

type recorder struct {
	mu  sync.Mutex
	pos []uint64
}

func (r *recorder) Apply(_ context.Context, rec eventstore.Recorded) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pos = append(r.pos, rec.Position)
	return nil
}

func TestRunnerResumesAfterDropWithoutLossOrRepeat(t *testing.T) {
	store := newStore(t)
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	for range 10 {
		h.report(domain.SeverityLow)
	}
	ctx := context.Background()
	positions := h.appendTo(store)
	last := positions[len(positions)-1]
	rec := &recorder{}
	runner := projections.NewRunner("test", flakyStore{Store: store, every: 3}, rec, quiet)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := runner.WaitFor(wctx, last); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(rec.pos) != 10 {
		t.Fatalf("applied %d events (%v), want 10 each once", len(rec.pos), rec.pos)
	}
	for i := 1; i < len(rec.pos); i++ {
		if rec.pos[i] <= rec.pos[i-1] {
			t.Fatalf("positions out of order or repeated: %v", rec.pos)
		}
	}
}

type failing struct{ at uint64 }

func (f failing) Apply(_ context.Context, r eventstore.Recorded) error {
	if r.Position == f.at {
		return domain.Errorf(domain.EINTERNAL, "cannot fold")
	}
	return nil
}

func TestRunnerStopsWhenProjectorFails(t *testing.T) {
	store := newStore(t)
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityLow)
	h.report(domain.SeverityLow)
	ctx := context.Background()
	positions := h.appendTo(store)
	runner := projections.NewRunner("test", store, failing{at: positions[1]}, quiet)
	errc := make(chan error, 1)
	go func() { errc <- runner.Run(ctx) }()
	select {
	case err := <-errc:
		if domain.ErrorCode(err) != domain.EINTERNAL {
			t.Fatalf("run error = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runner kept going past an event it could not fold")
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := runner.WaitFor(wctx, positions[1]); !errors.Is(err, projections.ErrStopped) {
		t.Fatalf("WaitFor after failure = %v, want ErrStopped", err)
	}
	if runner.Position() != positions[0] {
		t.Fatalf("position = %d, want %d (the last event folded)", runner.Position(), positions[0])
	}
}

func TestAnomaliesReadModelIsPerTenant(t *testing.T) {
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityHigh)
	h.resolve(0, domain.ResolutionMitigated)
	m := projections.NewAnomalies()
	for _, r := range h.recorded() {
		if err := m.Apply(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	id := h.anomalies[0].State().ID
	got, ok := m.Get("acme", id)
	if !ok || got.Status != domain.StatusResolved || got.Resolution != domain.ResolutionMitigated || got.Version != 2 {
		t.Fatalf("acme view = %+v, %v", got, ok)
	}
	if _, ok := m.Get("globex", id); ok {
		t.Fatal("another tenant sees the anomaly")
	}
	// An event out of order is refused and leaves the model as it was.
	bad := h.recorded()[1]
	bad.Version = 5
	if err := m.Apply(context.Background(), bad); domain.ErrorCode(err) != domain.EINTERNAL {
		t.Fatalf("out-of-order event: err = %v", err)
	}
	if again, _ := m.Get("acme", id); again.Version != 2 {
		t.Fatalf("a refused event changed the model: %+v", again)
	}
}

// The effects publisher fed by the read model's fold, then detached onto its
// own runner, publishes what a publisher on its own would: each effect once,
// in order, whenever the detach happens; and the agent read model is the same
// as without it.
func TestAgentsWithEffectsThenOwnRunner(t *testing.T) {
	recs, want := agentHistory(t, 10, 3)                   // 60 events, 60 effects
	for _, detachAt := range []int{0, 1, 25, 59, 60, -1} { // -1: never
		store := newStore(t)
		appendAll := func(rs []eventstore.Recorded) {
			for _, r := range rs {
				if _, err := store.Append(t.Context(), r.Version-1, r.Event); err != nil {
					t.Fatal(err)
				}
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		sink := &memorySink{}
		agents, effects := projections.NewAgents(), projections.NewEffects(sink, quiet)
		own := projections.NewRunner("effects", store, effects, quiet)
		both := &projections.AgentsWithEffects{Agents: agents, Effects: effects, OnDetach: func(pos uint64) {
			own.StartAfter(pos)
			go func() { _ = own.Run(ctx) }()
		}}
		readModel := projections.NewRunner("read_model", store, both, quiet)
		go func() { _ = readModel.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
		if detachAt >= 0 {
			appendAll(recs[:detachAt])
			if err := readModel.CatchUp(wctx); err != nil {
				t.Fatal(err)
			}
			both.Detach()
			appendAll(recs[detachAt:])
		} else {
			appendAll(recs)
		}
		last, err := store.Head(wctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := own.WaitFor(wctx, last); err != nil {
			t.Fatalf("detach at %d: %v", detachAt, err)
		}
		if err := readModel.WaitFor(wctx, last); err != nil {
			t.Fatal(err)
		}
		checkOnceInOrder(t, sink.effects(), want)
		checkAgents(t, agents, recs)
		wcancel()
		cancel()
	}
}

// A publisher whose sink does not answer fills its queue; the read model then
// goes on without it, and the publisher catches up on its own runner once the
// sink answers again.
func TestAgentsWithEffectsDetachWhenThePublisherFallsBehind(t *testing.T) {
	recs, want := agentHistory(t, 10, 3)
	store := newStore(t)
	for _, r := range recs {
		if _, err := store.Append(t.Context(), r.Version-1, r.Event); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sink := &memorySink{hold: make(chan struct{})}
	agents, effects := projections.NewAgents(), projections.NewEffects(sink, quiet)
	effects.SetMaxPending(4)
	own := projections.NewRunner("effects", store, effects, quiet)
	detached := make(chan uint64, 1)
	both := &projections.AgentsWithEffects{Agents: agents, Effects: effects, OnDetach: func(pos uint64) {
		detached <- pos
		own.StartAfter(pos)
		go func() { _ = own.Run(ctx) }()
	}}
	readModel := projections.NewRunner("read_model", store, both, quiet)
	go func() { _ = readModel.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if err := readModel.CatchUp(wctx); err != nil {
		t.Fatalf("the read model waited for the effects publisher: %v", err)
	}
	select {
	case pos := <-detached:
		if pos == 0 || pos >= uint64(len(recs)) {
			t.Fatalf("detached after position %d, want some effects fed first and not all", pos)
		}
	default:
		t.Fatal("the read model caught up without detaching a publisher that does not keep up")
	}
	checkAgents(t, agents, recs)
	close(sink.hold)
	last, err := store.Head(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := own.WaitFor(wctx, last); err != nil {
		t.Fatal(err)
	}
	checkOnceInOrder(t, sink.effects(), want)
}

// checkAgents compares the agent read model with a fold of recs alone.
func checkAgents(t *testing.T, agents *projections.Agents, recs []eventstore.Recorded) {
	t.Helper()
	alone := projections.NewAgents()
	for _, r := range recs {
		if err := alone.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		agent, _ := domain.AgentOf(r.Event)
		a, _ := agents.Get("acme", agent)
		b, _ := alone.Get("acme", agent)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("agent %s is %+v, folded alone %+v", agent, a, b)
		}
	}
}

// gated applies one event each time it is let through.
type gated struct{ gate chan struct{} }

func (g gated) Apply(ctx context.Context, _ eventstore.Recorded) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitFor returns once its own event is applied: not before, and not only
// once some later one is.
func TestWaitForReturnsWhenItsEventIsApplied(t *testing.T) {
	store := newStore(t)
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	for range 5 {
		h.report(domain.SeverityLow)
	}
	positions := h.appendTo(store)
	g := gated{gate: make(chan struct{})}
	runner := projections.NewRunner("gated", store, g, quiet)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = runner.Run(ctx) }()

	returned := make([]chan error, len(positions))
	for i, pos := range positions {
		returned[i] = make(chan error, 1)
		go func() { returned[i] <- runner.WaitFor(ctx, pos) }()
	}
	// A waiter that gives up is forgotten and does not hold the others back.
	gaveUp, stop := context.WithCancel(ctx)
	stop()
	if err := runner.WaitFor(gaveUp, positions[2]); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor with a cancelled context = %v", err)
	}
	for k := range positions {
		g.gate <- struct{}{} // apply the event at positions[k]
		select {
		case err := <-returned[k]:
			if err != nil {
				t.Fatalf("WaitFor(%d) = %v", positions[k], err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("WaitFor(%d) did not return once its event was applied", positions[k])
		}
		for j := k + 1; j < len(positions); j++ {
			select {
			case err := <-returned[j]:
				t.Fatalf("WaitFor(%d) returned (%v) when only %d was applied", positions[j], err, positions[k])
			default:
			}
		}
	}
}
