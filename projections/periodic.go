package projections

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/anomalyd/anomalyd/eventstore"
)

// PeriodicSnapshots cuts the read models every so many events, so that a
// snapshot is written while they go on folding, and a start after a crash
// replays only the events since the last one. It goes last in the Multi that
// folds Models, so that a cut holds each event whole.
//
// A cut waits for at least Every events since the last one, and for as many
// as half the lines (anomalies and agents) the last one held: a snapshot
// costs work in proportion to its size, so that spreads its cost evenly over
// the events, however large the models grow, and bounds the replay after a
// crash to about half a snapshot's worth of events. Before the first cut,
// "the last one" is the models as they are at the first armed event past
// Every: after a start from a snapshot, the first cut comes about half its
// size later; after a whole replay, at once.
type PeriodicSnapshots struct {
	Models ReadModels
	Every  uint64
	// Save writes a cut taken after the event last. It runs on a goroutine of
	// its own until it returns; no cut is taken meanwhile.
	Save func(cut ReadModels, last EventRef)

	// Apply's goroutine only:
	since uint64 // events folded since the last cut
	size  uint64 // lines of the last cut
	sized bool   // size is known

	armed  atomic.Bool
	saving atomic.Bool
	wg     sync.WaitGroup
}

// Arm starts the cuts; the events folded before count towards the first. A
// start-up arms them once the read model has caught up, so that the replay
// is not slowed by a save.
func (p *PeriodicSnapshots) Arm() { p.armed.Store(true) }

// Apply counts r and, when a cut is due, takes it and starts Save.
func (p *PeriodicSnapshots) Apply(_ context.Context, r eventstore.Recorded) error {
	p.since++
	if p.since < p.Every || !p.armed.Load() || p.saving.Load() {
		return nil
	}
	if !p.sized {
		p.size, p.sized = p.Models.lines(), true
	}
	if p.since < p.size/2 {
		return nil
	}
	p.since, p.size = 0, p.Models.lines()
	cut, last := p.Models.Cut(), refOf(r)
	p.saving.Store(true)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.saving.Store(false)
		p.Save(cut, last)
	}()
	return nil
}

// Wait waits until no Save runs. Once the runner that feeds p has stopped,
// none starts after it.
func (p *PeriodicSnapshots) Wait() { p.wg.Wait() }

// lines returns how many anomalies and agents m holds: the lines of its
// snapshot, but for the few policies.
func (m ReadModels) lines() uint64 {
	m.Anomalies.mu.RLock()
	n := 0
	for _, t := range m.Anomalies.tenants {
		n += len(t.order)
	}
	m.Anomalies.mu.RUnlock()
	m.Agents.mu.RLock()
	n += len(m.Agents.agents)
	m.Agents.mu.RUnlock()
	return uint64(n)
}
