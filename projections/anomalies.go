package projections

import (
	"context"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// Anomalies is the anomaly read model: every anomaly of every tenant, folded with
// the same rules the command side uses, kept in memory.
type Anomalies struct {
	mu      sync.RWMutex
	tenants map[string]map[uuid.UUID]*domain.AnomalyState
}

// NewAnomalies returns an empty read model.
func NewAnomalies() *Anomalies {
	return &Anomalies{tenants: make(map[string]map[uuid.UUID]*domain.AnomalyState)}
}

// Apply folds one event; events of other aggregates are ignored. It returns an
// INTERNAL_ERROR *domain.Error for an event that does not fold.
func (m *Anomalies) Apply(_ context.Context, r eventstore.Recorded) error {
	if r.Stream.Category != domain.CategoryAnomaly {
		return nil
	}
	id, err := uuid.Parse(r.Stream.ID)
	if err != nil {
		return domain.Errorf(domain.EINTERNAL, "anomaly stream %s: %v", r.Stream, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byID := m.tenants[r.TenantID]
	if byID == nil {
		byID = make(map[uuid.UUID]*domain.AnomalyState)
		m.tenants[r.TenantID] = byID
	}
	s := byID[id]
	if s == nil {
		s = &domain.AnomalyState{ID: id}
	}
	next := *s // fold into a copy so that a failed event leaves the model as it was
	if err := next.Apply(r.Event); err != nil {
		return err
	}
	*s = next
	byID[id] = s
	return nil
}

// Get returns the anomaly with id in tenant, and false when the tenant has none.
func (m *Anomalies) Get(tenant string, id uuid.UUID) (domain.AnomalyState, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.tenants[tenant][id]
	if !ok {
		return domain.AnomalyState{}, false
	}
	return *s, true
}
