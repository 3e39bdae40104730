package projections

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// AnomalyView is an anomaly as the read model serves it: its folded state, the
// later anomalies that reference it, and the store position of its report,
// which orders lists.
type AnomalyView struct {
	domain.AnomalyState
	ReferencedBy []uuid.UUID
	Position     uint64

	// epoch is the read model's epoch when the view was made: a view of an
	// earlier epoch may be in a cut being written, and is copied before it
	// changes (see tenantAnomalies.own).
	epoch uint64
}

type tenantAnomalies struct {
	byID  map[uuid.UUID]*AnomalyView
	order []*AnomalyView // by Position, ascending: reports arrive in log order
}

// Anomalies is the anomaly read model: every anomaly of every tenant, folded with
// the same rules the command side uses, kept in memory.
type Anomalies struct {
	mu      sync.RWMutex
	tenants map[string]*tenantAnomalies
	epoch   uint64 // how many cuts were taken (see ReadModels.Cut)
}

// NewAnomalies returns an empty read model.
func NewAnomalies() *Anomalies {
	return &Anomalies{tenants: make(map[string]*tenantAnomalies)}
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
	t := m.tenants[r.TenantID]
	if t == nil {
		t = &tenantAnomalies{byID: make(map[uuid.UUID]*AnomalyView)}
		m.tenants[r.TenantID] = t
	}
	v := t.byID[id]
	added := v == nil
	if added {
		v = &AnomalyView{AnomalyState: domain.AnomalyState{ID: id}, Position: r.Position, epoch: m.epoch}
	}
	next := v.AnomalyState // fold into a copy so that a failed event leaves the model as it was
	if err := next.Apply(r.Event); err != nil {
		return err
	}
	if !added {
		v = t.own(v, m.epoch)
	}
	v.AnomalyState = next
	if added {
		t.byID[id] = v
		t.order = append(t.order, v)
		if ref := next.ReferencesAnomalyID; ref != nil {
			if orig := t.byID[*ref]; orig != nil {
				orig = t.own(orig, m.epoch)
				orig.ReferencedBy = append(orig.ReferencedBy, id)
			}
		}
	}
	return nil
}

// own returns v to change in place when it was made in this epoch; else a
// copy of it, made in this epoch, that replaces it in the model, since v may
// be in a cut being written. (The copy shares ReferencedBy's array: appending
// writes past v's length only, where v is never read.)
func (t *tenantAnomalies) own(v *AnomalyView, epoch uint64) *AnomalyView {
	if v.epoch == epoch {
		return v
	}
	c := *v
	c.epoch = epoch
	t.byID[c.ID] = &c
	i := sort.Search(len(t.order), func(k int) bool { return t.order[k].Position >= c.Position })
	t.order[i] = &c
	return &c
}

// cut returns a copy of the model's lists for a snapshot (no index by id), and
// starts a new epoch, so that no view the copy holds changes any more.
func (m *Anomalies) cut() *Anomalies {
	// Readers may go on: only the folding goroutine, which calls cut, writes
	// the model, and the epoch is its own.
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := &Anomalies{tenants: make(map[string]*tenantAnomalies, len(m.tenants))}
	for name, t := range m.tenants {
		out.tenants[name] = &tenantAnomalies{order: slices.Clone(t.order)}
	}
	m.epoch++
	return out
}

func (v *AnomalyView) clone() AnomalyView {
	c := *v
	c.ReferencedBy = slices.Clone(v.ReferencedBy)
	c.epoch = 0 // the model's bookkeeping, not the anomaly's
	return c
}

// Get returns the anomaly with id in tenant, and false when the tenant has none.
func (m *Anomalies) Get(tenant string, id uuid.UUID) (AnomalyView, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tenants[tenant]
	if t == nil || t.byID[id] == nil {
		return AnomalyView{}, false
	}
	return t.byID[id].clone(), true
}

// Filter selects anomalies in a list; zero fields match everything.
type Filter struct {
	Status        domain.Status
	Severity      domain.Severity
	AgentID       uuid.UUID
	AnomalyType   string
	CreatedAfter  time.Time // exclusive
	CreatedBefore time.Time // exclusive
}

func (f Filter) match(v *AnomalyView) bool {
	switch {
	case f.Status != "" && v.Status != f.Status,
		f.Severity != "" && v.Severity != f.Severity,
		f.AgentID != uuid.Nil && v.AgentID != f.AgentID,
		f.AnomalyType != "" && v.AnomalyType != f.AnomalyType,
		!f.CreatedAfter.IsZero() && !v.CreatedAt.After(f.CreatedAfter),
		!f.CreatedBefore.IsZero() && !v.CreatedAt.Before(f.CreatedBefore):
		return false
	}
	return true
}

// List returns up to limit anomalies of tenant that match f, newest first,
// reported before the position before (0: from the newest), and the position to
// pass as before for the next page (0 when this is the last page). Anomalies
// reported while a client pages are newer than its cursor, so pages neither
// repeat nor skip an anomaly.
func (m *Anomalies) List(tenant string, f Filter, before uint64, limit int) ([]AnomalyView, uint64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tenants[tenant]
	if t == nil {
		return []AnomalyView{}, 0
	}
	i := len(t.order)
	if before > 0 {
		i = sort.Search(len(t.order), func(k int) bool { return t.order[k].Position >= before })
	}
	out := make([]AnomalyView, 0, min(limit, 64))
	for i--; i >= 0; i-- {
		v := t.order[i]
		if !f.match(v) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Position
		}
		out = append(out, v.clone())
	}
	return out, 0
}

// Tenants returns the tenants that have anomalies, sorted.
func (m *Anomalies) Tenants() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.tenants))
	for t := range m.tenants {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
