package projections

import (
	"context"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// Agents is the agent read model: every agent's containment, folded from the
// events of all its anomalies and its own manual decisions.
type Agents struct {
	mu     sync.RWMutex
	agents map[agentKey]*domain.AgentContainment
}

// NewAgents returns an empty agent read model.
func NewAgents() *Agents {
	return &Agents{agents: make(map[agentKey]*domain.AgentContainment)}
}

// Apply folds one event that concerns an agent; others are ignored. It returns
// an INTERNAL_ERROR *domain.Error for an event that does not decode.
func (m *Agents) Apply(_ context.Context, r eventstore.Recorded) error {
	agent, ok := domain.AgentOf(r.Event)
	if !ok {
		return nil
	}
	key := agentKey{r.TenantID, agent}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.agents[key]
	if c == nil {
		c = &domain.AgentContainment{}
		m.agents[key] = c
	}
	return c.Apply(r.Event)
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
