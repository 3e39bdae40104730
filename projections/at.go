package projections

import (
	"sort"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// AnomalyAt folds an anomaly's events that occurred at or before at, with the
// same fold as the live read model. It returns false when the anomaly did not
// exist yet at that time, and an INTERNAL_ERROR *domain.Error for events that
// do not fold.
func AnomalyAt(events []domain.Event, at time.Time) (domain.AnomalyState, bool, error) {
	var s domain.AnomalyState
	for _, e := range events {
		if e.OccurredAt.After(at) {
			break
		}
		if err := s.Apply(e); err != nil {
			return domain.AnomalyState{}, false, err
		}
	}
	return s, s.Version > 0, nil
}

// AgentAt folds, in store order, the events concerning agent that occurred at or
// before at (events of other agents are ignored): the agent's containment as
// it was then. It returns false when no anomaly of the agent existed yet.
func AgentAt(events []eventstore.Recorded, agent uuid.UUID, at time.Time) (domain.AgentContainment, bool, error) {
	sorted := append([]eventstore.Recorded(nil), events...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Position < sorted[j].Position })
	var c domain.AgentContainment
	for _, r := range sorted {
		if id, ok := domain.AgentOf(r.Event); !ok || id != agent || r.OccurredAt.After(at) {
			continue
		}
		if err := c.Apply(r.Event); err != nil {
			return domain.AgentContainment{}, false, err
		}
	}
	return c, c.Known(), nil
}

// AnomaliesOfAgent returns the ids of tenant's anomalies reported against agent,
// oldest first: the streams to read to rebuild the agent from the log.
func (m *Anomalies) AnomaliesOfAgent(tenant string, agent uuid.UUID) []uuid.UUID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tenants[tenant]
	if t == nil {
		return nil
	}
	var out []uuid.UUID
	for _, v := range t.order {
		if v.AgentID == agent {
			out = append(out, v.ID)
		}
	}
	return out
}
