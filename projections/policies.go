package projections

import (
	"context"
	"encoding/json"
	"maps"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
)

// Policies is the read model of the tenants' auto-response policies as their
// logs record them.
type Policies struct {
	mu       sync.RWMutex
	policies map[string]domain.Policy
}

// NewPolicies returns an empty policy read model: every tenant has the default.
func NewPolicies() *Policies { return &Policies{policies: make(map[string]domain.Policy)} }

// Apply folds a policy.changed event; others are ignored. It returns an
// INTERNAL_ERROR *domain.Error for an event that does not decode.
func (m *Policies) Apply(_ context.Context, r eventstore.Recorded) error {
	if r.Type != domain.EventPolicyChanged {
		return nil
	}
	var d domain.PolicyChanged
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return domain.Errorf(domain.EINTERNAL, "decode %s %s: %v", r.Type, r.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[r.TenantID] = domain.Policy(d.AutoResponse).Complete()
	return nil
}

// Get returns the policy in force for tenant.
func (m *Policies) Get(tenant string) domain.Policy {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if p, ok := m.policies[tenant]; ok {
		return maps.Clone(p)
	}
	return domain.DefaultPolicy()
}

// All returns the policy of every tenant whose log records one.
func (m *Policies) All() map[string]domain.Policy {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]domain.Policy, len(m.policies))
	for t, p := range m.policies {
		out[t] = maps.Clone(p)
	}
	return out
}
