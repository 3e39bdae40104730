package projections_test

import (
	"runtime"
	"testing"
	"weak"

	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/projections"
)

// The stores decode an event as views of the bytes they read
// (eventstore.UnmarshalEvent). The read models keep something of every
// aggregate for as long as it lives, the tenant and the last hash among it;
// were any of it such a view, every aggregate would keep its last event's bytes
// in memory, about a kilobyte each.
func TestReadModelsKeepNoViewOfTheStoredBytes(t *testing.T) {
	h := &history{t: t, tenant: "acme", agent: uuid.New()}
	h.report(domain.SeverityHigh)
	h.report(domain.SeverityCritical)
	h.resolve(0, domain.ResolutionMitigated)
	h.resolve(1, domain.ResolutionAgentRevoked)
	policy, err := domain.LoadPolicy(h.tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Change(domain.Policy{domain.SeverityLow: domain.ContainmentThrottled}, "test", h.meta()); err != nil {
		t.Fatal(err)
	}
	h.events = append(h.events, policy.Changes()...)

	anomalies, agents, policies := projections.NewAnomalies(), projections.NewAgents(), projections.NewPolicies()
	m := projections.Multi{anomalies, agents, policies}
	read := make([]weak.Pointer[byte], 0, len(h.events))
	for _, r := range h.recorded() {
		read = append(read, applyStored(t, m, r))
	}
	runtime.GC()
	runtime.GC()
	for i, p := range read {
		if p.Value() != nil {
			t.Errorf("the read models keep the bytes event %d (%s) was read from", i+1, h.events[i].Type)
		}
	}
	for _, a := range h.anomalies {
		if v, ok := anomalies.Get(h.tenant, a.State().ID); !ok || v.Hash != a.State().Hash || v.Tenant != h.tenant {
			t.Errorf("anomaly %s in the read model: %+v, %v", a.State().ID, v, ok)
		}
	}
	if _, ok := agents.Get(h.tenant, h.agent); !ok {
		t.Errorf("agent %s is not in the read model", h.agent)
	}
	if got := policies.Get(h.tenant)[domain.SeverityLow]; got != domain.ContainmentThrottled {
		t.Errorf("policy for low severity = %s, want %s", got, domain.ContainmentThrottled)
	}
}

// applyStored encodes r's event as a store keeps it, decodes it as a store
// reads it, applies it to m, and returns a weak pointer to the bytes it read.
func applyStored(t *testing.T, m projections.Multi, r eventstore.Recorded) weak.Pointer[byte] {
	t.Helper()
	b, err := eventstore.MarshalEvent(r.Event)
	if err != nil {
		t.Fatal(err)
	}
	e, err := eventstore.UnmarshalEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(t.Context(), eventstore.Recorded{Event: e, Position: r.Position}); err != nil {
		t.Fatalf("apply %s: %v", e.Type, err)
	}
	return weak.Make(&b[0])
}
