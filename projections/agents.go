package projections

import (
	"context"
	"maps"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// Agents is the agent read model: every agent's containment, folded from the
// events of all its anomalies and its own manual decisions.
type Agents struct {
	mu     sync.RWMutex
	agents agentFold
	epoch  uint64 // how many cuts were taken (see ReadModels.Cut)
}

// NewAgents returns an empty agent read model.
func NewAgents() *Agents {
	return &Agents{agents: make(agentFold)}
}

// Apply folds one event that concerns an agent; others are ignored. It returns
// an INTERNAL_ERROR *domain.Error for an event that does not decode.
func (m *Agents) Apply(_ context.Context, r eventstore.Recorded) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, _, err := m.agents.apply(r, m.epoch)
	return err
}

// cut returns a copy of the model's index for a snapshot, and starts a new
// epoch, so that no containment the copy holds changes any more.
func (m *Agents) cut() *Agents {
	m.mu.RLock() // as Anomalies.cut
	defer m.mu.RUnlock()
	out := &Agents{agents: maps.Clone(m.agents)}
	m.epoch++
	return out
}

// agentFold is every agent's containment, by tenant and agent.
type agentFold map[agentKey]*agentEntry

// agentEntry is an agent's containment and the epoch of its fold it was made
// in: one of an earlier epoch may be in a cut being written, and is copied
// before it changes.
type agentEntry struct {
	domain.AgentContainment
	epoch uint64
}

// apply folds r, in the fold's epoch, into the containment of the agent it
// concerns and returns the agent and its status before and after: equal when
// r changes nothing or concerns no agent.
func (f agentFold) apply(r eventstore.Recorded, epoch uint64) (agent uuid.UUID, before, after domain.Containment, err error) {
	agent, ok := domain.AgentOf(r.Event)
	if !ok {
		return uuid.Nil, 0, 0, nil
	}
	key := agentKey{r.TenantID, agent}
	c := f[key]
	switch {
	case c == nil:
		c = &agentEntry{epoch: epoch}
		f[key] = c
	case c.epoch != epoch:
		c = &agentEntry{AgentContainment: c.Clone(), epoch: epoch}
		f[key] = c
	}
	before = c.Status()
	if err := c.Apply(r.Event); err != nil {
		return uuid.Nil, 0, 0, err
	}
	return agent, before, c.Status(), nil
}

// clone returns a copy of f that shares nothing with it. The copies are
// allocated together: a clone of a few hundred thousand agents is one
// allocation, not as many.
func (f agentFold) clone() agentFold {
	out := make(agentFold, len(f))
	slab := make([]agentEntry, 0, len(f))
	for k, c := range f {
		slab = append(slab, agentEntry{AgentContainment: c.Clone()})
		out[k] = &slab[len(slab)-1]
	}
	return out
}

// Get returns a copy of the agent's containment in tenant; false when no event
// of the tenant concerns the agent.
func (m *Agents) Get(tenant string, agent uuid.UUID) (domain.AgentContainment, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.agents[agentKey{tenant, agent}]
	if c == nil || !c.Known() {
		return domain.AgentContainment{}, false
	}
	return c.Clone(), true
}

// AgentsWithEffects is the agent read model feeding the effects publisher
// from its own fold: each event is read, decoded and folded once for both, at
// start-up and live. The publisher must never hold the read model back, so
// when its queue is full (its sink is slow or away) AgentsWithEffects detaches
// it: the publisher gets a copy of the agents, and OnDetach the position of the
// last event it was fed, to go on with its own runner from there
// (Runner.StartAfter).
type AgentsWithEffects struct {
	Agents   *Agents
	Effects  *Effects
	OnDetach func(pos uint64) // called once, from Apply or Detach; it must not block

	mu       sync.Mutex
	pos      uint64
	detached bool
}

// Apply folds r into the agents and, until the publisher is detached, passes
// the change r makes to an agent's status to the effects publisher (see
// Effects.Apply).
func (a *AgentsWithEffects) Apply(ctx context.Context, r eventstore.Recorded) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.detached && a.Effects.full() {
		a.detach()
	}
	a.Agents.mu.Lock()
	agent, before, after, err := a.Agents.agents.apply(r, a.Agents.epoch)
	a.Agents.mu.Unlock()
	if err != nil || a.detached {
		return err
	}
	if err := a.Effects.publishChange(ctx, r, agent, before, after); err != nil {
		return err
	}
	a.pos = r.Position
	return nil
}

// StartAfter records that the agents were folded, and every effect of their
// events stored, up to the event at pos by other means (a snapshot): a detach
// before the next event hands the publisher's runner that position, and the
// publisher counts its events as settled. It must be called before Apply.
func (a *AgentsWithEffects) StartAfter(pos uint64) {
	a.mu.Lock()
	a.pos = pos
	a.mu.Unlock()
	a.Effects.startAfter(pos)
}

// Detach detaches the effects publisher now, as a full queue would.
func (a *AgentsWithEffects) Detach() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.detached {
		a.detach()
	}
}

// detach hands the publisher a copy of every agent's containment, as of the
// last event it was fed, and tells OnDetach. a.mu is held.
func (a *AgentsWithEffects) detach() {
	a.detached = true
	a.Agents.mu.RLock()
	a.Effects.agents = a.Agents.agents.clone()
	a.Agents.mu.RUnlock()
	if a.OnDetach != nil {
		a.OnDetach(a.pos)
	}
}

// LiveAgents reads the agent read model once it holds every event that the
// store had when the read began, as a command that decides on it needs.
type LiveAgents struct {
	Runner *Runner
	Agents *Agents
}

// Containment returns the agent's containment as of the store's head at the
// time of the call; an unknown agent's is the zero value. It returns the
// runner's error when the read model cannot catch up.
func (l LiveAgents) Containment(ctx context.Context, tenant string, agent uuid.UUID) (domain.AgentContainment, error) {
	if err := l.Runner.CatchUp(ctx); err != nil {
		return domain.AgentContainment{}, err
	}
	c, _ := l.Agents.Get(tenant, agent)
	return c, nil
}

// Multi applies each event to every projector in turn, so that several read
// models share one subscription and one position.
type Multi []Projector

// Apply folds r into every projector, stopping at the first error.
func (m Multi) Apply(ctx context.Context, r eventstore.Recorded) error {
	for _, p := range m {
		if err := p.Apply(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
