package projections_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// cutLog returns the events of agents of two tenants in log order: each agent
// has two anomalies reported, then both resolved, then a third reported that
// references the first. So the events after a cut change anomalies and agents
// that the cut holds, and add to an earlier anomaly's ReferencedBy.
func cutLog(t *testing.T) (events []eventstore.Recorded, agents map[string][]uuid.UUID) {
	t.Helper()
	agents = map[string][]uuid.UUID{}
	var hs []*history
	for i := range 40 {
		h := &history{t: t, tenant: []string{"acme", "globex"}[i%2], agent: uuid.New(), n: i * 10}
		hs = append(hs, h)
		agents[h.tenant] = append(agents[h.tenant], h.agent)
	}
	var order []domain.Event
	take := func(h *history) {
		order = append(order, h.events...)
		h.events = nil
	}
	for _, h := range hs {
		h.report(domain.SeverityCritical)
		h.report(domain.SeverityHigh)
		take(h)
	}
	for i, h := range hs {
		h.resolve(0, resolutionsInOrder[i%4])
		h.resolve(1, domain.ResolutionMitigated)
		take(h)
	}
	for _, h := range hs {
		ref := h.anomalies[0].State().ID
		a, err := domain.Report(domain.ReportAnomaly{Tenant: h.tenant, AnomalyID: uuid.New(), AgentID: h.agent,
			AnomalyType: "rate_spike", Severity: domain.SeverityHigh, ReferencesAnomalyID: &ref}, domain.DefaultPolicy(), h.meta())
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, a.Changes()...)
	}
	for i, e := range order {
		events = append(events, eventstore.Recorded{Event: e, Position: uint64(i + 1)})
	}
	return events, agents
}

type cut struct {
	models projections.ReadModels
	last   projections.EventRef
}

// Each cut, written only after every later event has been folded into the
// models it was cut from, holds exactly what a fold of the log up to its
// event holds: nothing folded after it reaches it.
func TestCutsHoldTheReadModelsAsOfTheirEvent(t *testing.T) {
	events, agents := cutLog(t)
	live := projections.NewReadModels()
	var cuts []cut
	periodic := &projections.PeriodicSnapshots{Models: live, Every: 20,
		Save: func(m projections.ReadModels, last projections.EventRef) { cuts = append(cuts, cut{m, last}) }}
	fold := projections.Multi{live.Anomalies, live.Agents, live.Policies, periodic}
	for i, r := range events {
		if i == 10 {
			periodic.Arm() // the events before count towards the first cut
		}
		if err := fold.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		periodic.Wait() // Save has returned: the next cut may be taken
	}
	if len(cuts) < 3 {
		t.Fatalf("%d cuts of %d events, want at least 3", len(cuts), len(events))
	}
	for i, c := range cuts {
		// At least Every events apart, and half the lines the models had.
		if i > 0 && c.last.Position-cuts[i-1].last.Position < 20 {
			t.Errorf("cut %d at %d, %d events after the one before", i, c.last.Position, c.last.Position-cuts[i-1].last.Position)
		}
		want := projections.NewReadModels()
		wfold := projections.Multi{want.Anomalies, want.Agents, want.Policies}
		for _, r := range events[:c.last.Position] {
			if err := wfold.Apply(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		if c.last != projections.RefOf(events[c.last.Position-1]) {
			t.Errorf("cut %d names %+v, not the event it was taken after", i, c.last)
		}
		sameAsFold(t, c.models, want, agents)
		path := filepath.Join(t.TempDir(), "read-models.snapshot")
		if _, err := projections.SaveSnapshot(context.Background(), path, c.models, c.last, projections.SaveOptions{Workers: 1}); err != nil {
			t.Fatal(err)
		}
		s, err := projections.ReadSnapshot(path)
		if err != nil {
			t.Fatal(err)
		}
		sameAsFold(t, s.Models, want, agents)
	}
	// The live models went on folding as if no cut had been taken.
	want := projections.NewReadModels()
	wfold := projections.Multi{want.Anomalies, want.Agents, want.Policies}
	for _, r := range events {
		if err := wfold.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	sameAsFold(t, live, want, agents)
	for _, tenant := range []string{"acme", "globex"} {
		all, _ := live.Anomalies.List(tenant, projections.Filter{}, 0, 1000)
		for _, v := range all {
			got, ok := live.Anomalies.Get(tenant, v.ID)
			if !ok || !reflect.DeepEqual(got, v) {
				t.Fatalf("anomaly %s: by id %+v, listed %+v", v.ID, got, v)
			}
		}
	}
}

// sameAsFold compares every anomaly list and agent of the tenants.
func sameAsFold(t *testing.T, got, want projections.ReadModels, agents map[string][]uuid.UUID) {
	t.Helper()
	for tenant, ids := range agents {
		g, _ := got.Anomalies.List(tenant, projections.Filter{}, 0, 1000)
		w, _ := want.Anomalies.List(tenant, projections.Filter{}, 0, 1000)
		if len(w) == 0 || !reflect.DeepEqual(g, w) {
			t.Fatalf("anomalies of %s:\n got %+v\nwant %+v", tenant, g, w)
		}
		for _, a := range ids {
			gc, gok := got.Agents.Get(tenant, a)
			wc, wok := want.Agents.Get(tenant, a)
			if gok != wok || !reflect.DeepEqual(gc, wc) {
				t.Fatalf("agent %s of %s:\n got %+v\nwant %+v", a, tenant, gc.Record(), wc.Record())
			}
		}
	}
	if g, w := got.Policies.All(), want.Policies.All(); !reflect.DeepEqual(g, w) {
		t.Fatalf("policies: got %v, want %v", g, w)
	}
}

// No cut is taken before Arm, nor while the last one is being saved.
func TestCutsWaitForArmAndForTheSaveBefore(t *testing.T) {
	events, _ := cutLog(t)
	live := projections.NewReadModels()
	release := make(chan struct{})
	var cuts []projections.EventRef
	periodic := &projections.PeriodicSnapshots{Models: live, Every: 1,
		Save: func(_ projections.ReadModels, last projections.EventRef) {
			cuts = append(cuts, last)
			<-release
		}}
	fold := projections.Multi{live.Anomalies, live.Agents, live.Policies, periodic}
	for i, r := range events {
		if i == len(events)/2 {
			periodic.Arm()
		}
		if err := fold.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	periodic.Wait()
	if len(cuts) != 1 || cuts[0].Position != uint64(len(events)/2+1) {
		t.Errorf("cuts after %v, want one, after the first event folded once armed (%d)", cuts, len(events)/2+1)
	}
}

// A save that rests between its batches writes the same snapshot; one whose
// context ends leaves the snapshot before it, and no file beside it.
func TestSnapshotSaveSharingTheCPUAndStopped(t *testing.T) {
	events, agents := cutLog(t)
	m := projections.NewReadModels()
	fold := projections.Multi{m.Anomalies, m.Agents, m.Policies}
	for _, r := range events {
		if err := fold.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	last := projections.RefOf(events[len(events)-1])
	path := filepath.Join(t.TempDir(), "read-models.snapshot")
	if _, err := projections.SaveSnapshot(t.Context(), path, m, last, projections.SaveOptions{Workers: 1, Share: 0.5}); err != nil {
		t.Fatal(err)
	}
	s, err := projections.ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	sameAsFold(t, s.Models, m, agents)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := projections.SaveSnapshot(ctx, path, m, last, projections.SaveOptions{Workers: 1, Share: 0.5}); !errors.Is(err, context.Canceled) {
		t.Fatalf("save with its context ended: %v, want context.Canceled", err)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
		t.Errorf("a stopped save changed the snapshot before it (err %v)", err)
	}
	if names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(names) != 1 {
		t.Errorf("files beside the snapshot after a stopped save: %v", names)
	}
}
