package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// The rules of DESIGN.md ("Effect of a resolution on the agent", "Agent
// containment"), written out here so that the expectations derive from them and
// not from the code under test.
const (
	ctRelease = "release" // auto-response reversed
	ctKeep    = "keep"    // auto-response remains until a manual restore
	ctRevoke  = "revoke"  // revoked, for good
)

// ctClosers are the five ways to close an anomaly and their effect on the agent.
var ctClosers = []struct {
	name   string // a resolution, or "dismiss"
	effect string
}{
	{"false_positive", ctRelease},
	{"mitigated", ctKeep},
	{"accepted_risk", ctRelease},
	{"agent_revoked", ctRevoke},
	{"dismiss", ctRelease},
}

// ctAutoResponse is the default policy: severity → containment ("" for none).
var ctAutoResponse = map[domain.Severity]string{
	domain.SeverityLow:      "",
	domain.SeverityMedium:   "throttled",
	domain.SeverityHigh:     "suspended",
	domain.SeverityCritical: "quarantined",
}

// ctStrength lists the effective statuses weakest first.
var ctStrength = []string{"active", "throttled", "suspended", "quarantined", "revoked"}

// ctModel is the agent as DESIGN.md describes it: the holds of its anomalies
// (while open or investigating, or mitigated until a restore) and whether any
// revocation exists.
type ctModel struct {
	holds   map[uuid.UUID]ctHold
	revoked bool
}

type ctHold struct {
	containment string
	reason      string // "open", "investigating", "mitigated"
}

func (m *ctModel) report(id uuid.UUID, sev domain.Severity) {
	if m.holds == nil {
		m.holds = map[uuid.UUID]ctHold{}
	}
	if c := ctAutoResponse[sev]; c != "" {
		m.holds[id] = ctHold{containment: c, reason: "open"}
	}
}

func (m *ctModel) investigate(id uuid.UUID) {
	if h, ok := m.holds[id]; ok {
		h.reason = "investigating"
		m.holds[id] = h
	}
}

func (m *ctModel) close(id uuid.UUID, effect string) {
	switch effect {
	case ctRelease:
		delete(m.holds, id)
	case ctKeep:
		if h, ok := m.holds[id]; ok {
			h.reason = "mitigated"
			m.holds[id] = h
		}
	case ctRevoke:
		delete(m.holds, id)
		m.revoked = true
	}
}

// status is the effective status: revoked once any revocation exists, else the
// strongest containment held, else active.
func (m *ctModel) status() string {
	if m.revoked {
		return "revoked"
	}
	best := 0
	for _, h := range m.holds {
		best = max(best, slices.Index(ctStrength, h.containment))
	}
	return ctStrength[best]
}

// restore is what a manual restore must answer: CONFLICT when revoked, CONFLICT
// naming the open or investigating holds, CONFLICT when nothing mitigated is
// left, else the mitigated holds it releases.
func (m *ctModel) restore() (code string, holding, released []uuid.UUID) {
	if m.revoked {
		return domain.ECONFLICT, nil, nil
	}
	for id, h := range m.holds {
		if h.reason == "mitigated" {
			released = append(released, id)
		} else {
			holding = append(holding, id)
		}
	}
	if len(holding) > 0 || len(released) == 0 {
		return domain.ECONFLICT, holding, nil
	}
	return "", nil, released
}

// ctWorld drives real commands against one agent and checks the containment
// folded from their events against the model after every step.
type ctWorld struct {
	t     *testing.T
	c     domain.AgentContainment
	model ctModel
	agent *domain.Agent
	n     int
}

func newCtWorld(t *testing.T) *ctWorld {
	t.Helper()
	agent, err := domain.LoadAgent(tenant, agentID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ctWorld{t: t, agent: agent}
}

// meta returns a Meta with a fresh event id, a minute after the previous one.
func (w *ctWorld) meta() domain.Meta {
	w.n++
	return domain.Meta{EventID: uuid.New(), At: t0.Add(time.Duration(w.n) * time.Minute), Actor: alice}
}

func (w *ctWorld) apply(e domain.Event) {
	w.t.Helper()
	if id, ok := domain.AgentOf(e); !ok || id != agentID {
		w.t.Fatalf("AgentOf(%s) = %v %v, want %v", e.Type, id, ok, agentID)
	}
	if err := w.c.Apply(e); err != nil {
		w.t.Fatalf("apply %s: %v", e.Type, err)
	}
}

func (w *ctWorld) report(sev domain.Severity) *domain.Anomaly {
	w.t.Helper()
	cmd := reportCmd(sev)
	cmd.AnomalyID = uuid.New()
	a, err := domain.Report(cmd, domain.DefaultPolicy(), w.meta())
	if err != nil {
		w.t.Fatalf("report: %v", err)
	}
	w.apply(a.Changes()[0])
	w.model.report(cmd.AnomalyID, sev)
	w.check("report " + string(sev))
	return a
}

func (w *ctWorld) investigate(a *domain.Anomaly) {
	w.t.Helper()
	if err := a.Investigate(domain.InvestigateAnomaly{Assignee: strp("erin@example.com")}, w.meta()); err != nil {
		w.t.Fatalf("investigate: %v", err)
	}
	w.apply(ctLast(a.Changes()))
	w.model.investigate(a.State().ID)
	w.check("investigate " + string(a.State().Severity))
}

func (w *ctWorld) close(a *domain.Anomaly, closer string) {
	w.t.Helper()
	var err error
	if closer == "dismiss" {
		err = a.Dismiss(domain.DismissAnomaly{Reason: "not reproducible"}, w.meta())
	} else {
		err = a.Resolve(domain.ResolveAnomaly{Resolution: domain.Resolution(closer)}, w.meta())
	}
	if err != nil {
		w.t.Fatalf("%s: %v", closer, err)
	}
	w.apply(ctLast(a.Changes()))
	w.model.close(a.State().ID, ctEffect(closer))
	w.check(closer + " " + string(a.State().Severity))
}

// restore runs Agent.Restore and checks its answer against the model: the error
// code and details, or the agent.restored event and the status it leads to.
func (w *ctWorld) restore() {
	w.t.Helper()
	wantCode, holding, released := w.model.restore()
	wantStatus := w.model.status()
	n := len(w.agent.Changes())
	m := w.meta()
	err := w.agent.Restore(&w.c, domain.RestoreAgent{Notes: strp("back to work")}, m)
	if got := domain.ErrorCode(err); got != wantCode {
		w.t.Fatalf("restore: error code = %q (%v), want %q", got, err, wantCode)
	}
	if err != nil {
		if len(w.agent.Changes()) != n {
			w.t.Errorf("a refused restore recorded an event")
		}
		var de *domain.Error
		if !errors.As(err, &de) || de.Details["status"] != wantStatus {
			w.t.Errorf("restore: details = %v, want status %q", de, wantStatus)
			return
		}
		if got := ctIDs(de.Details["holding_anomalies"]); !slices.Equal(got, ctSorted(holding)) {
			w.t.Errorf("restore: holding_anomalies = %v, want %v", got, ctSorted(holding))
		}
		return
	}
	if len(w.agent.Changes()) != n+1 {
		w.t.Fatalf("restore recorded %d events, want 1", len(w.agent.Changes())-n)
	}
	e := ctLast(w.agent.Changes())
	w.checkAgentEvent(e, domain.EventAgentRestored, m)
	var d domain.AgentRestored
	if err := ctDecode(e, &d); err != nil {
		w.t.Fatal(err)
	}
	if d.AgentID != agentID || !slices.Equal(ctIDs(d.Released), ctSorted(released)) || d.Notes == nil || *d.Notes != "back to work" {
		w.t.Errorf("agent.restored = %+v, want released %v", d, ctSorted(released))
	}
	w.apply(e)
	for _, id := range d.Released {
		if h, ok := w.model.holds[id]; ok && h.reason == "mitigated" {
			delete(w.model.holds, id)
		}
	}
	w.check("restore")
}

// revoke runs Agent.Revoke and checks its answer: wantCode, or the
// agent.revoked event, after which the agent is revoked.
func (w *ctWorld) revoke(reason, wantCode string) {
	w.t.Helper()
	n := len(w.agent.Changes())
	m := w.meta()
	err := w.agent.Revoke(&w.c, domain.RevokeAgent{Reason: reason}, m)
	if got := domain.ErrorCode(err); got != wantCode {
		w.t.Fatalf("revoke: error code = %q (%v), want %q", got, err, wantCode)
	}
	if err != nil {
		if len(w.agent.Changes()) != n {
			w.t.Errorf("a refused revoke recorded an event")
		}
		return
	}
	e := ctLast(w.agent.Changes())
	w.checkAgentEvent(e, domain.EventAgentRevoked, m)
	var d domain.AgentRevoked
	if err := ctDecode(e, &d); err != nil {
		w.t.Fatal(err)
	}
	if d.AgentID != agentID || d.Reason != reason {
		w.t.Errorf("agent.revoked = %+v, want reason %q", d, reason)
	}
	w.apply(e)
	w.model.revoked = true
	w.check("revoke")
}

func (w *ctWorld) checkAgentEvent(e domain.Event, typ string, m domain.Meta) {
	w.t.Helper()
	if e.Type != typ || e.ID != m.EventID || e.Stream != domain.AgentStream(tenant, agentID) ||
		e.Version != uint64(len(w.agent.Changes())) || e.TenantID != tenant || !e.OccurredAt.Equal(m.At) || e.Actor != alice {
		w.t.Errorf("event = %s id %s stream %v v%d at %s by %v, want %s id %s v%d at %s by %v",
			e.Type, e.ID, e.Stream, e.Version, e.OccurredAt, e.Actor, typ, m.EventID, len(w.agent.Changes()), m.At, alice)
	}
	lcRoundTrip(w.t, e)
}

// check compares the effective status and, unless the agent is revoked, the
// holds (anomaly, containment, reason; strongest first) with the model.
func (w *ctWorld) check(after string) {
	w.t.Helper()
	if got, want := domain.AgentStatus(w.c.Status()), w.model.status(); got != want {
		w.t.Fatalf("after %s: status = %s, want %s", after, got, want)
	}
	if w.model.revoked {
		return
	}
	var got, want []string
	var strengths []int
	for _, h := range w.c.Holds() {
		got = append(got, fmt.Sprintf("%s:%s:%s", h.AnomalyID, h.Containment, h.Reason))
		strengths = append(strengths, slices.Index(ctStrength, h.Containment.String()))
	}
	for id, h := range w.model.holds {
		want = append(want, fmt.Sprintf("%s:%s:%s", id, h.containment, h.reason))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		w.t.Fatalf("after %s: holds = %v, want %v", after, got, want)
	}
	if !slices.IsSortedFunc(strengths, func(a, b int) int { return b - a }) {
		w.t.Fatalf("after %s: holds %+v are not strongest first", after, w.c.Holds())
	}
}

// TestContainmentTwoAnomalies closes a medium (throttled) and a high (suspended)
// anomaly of one agent with every pair of closers, in both orders, from open
// and from investigating, and then tries a manual restore. A restore between
// the two closes is always refused: the other anomaly still holds the agent, or
// it is revoked.
func TestContainmentTwoAnomalies(t *testing.T) {
	orders := []struct {
		name      string
		highFirst bool
	}{{"HighFirst", true}, {"MediumFirst", false}}
	for _, high := range ctClosers {
		for _, med := range ctClosers {
			// What the final restore must do, from the two effects alone.
			outcome := "RestoreRefusedNothingHeld"
			switch {
			case high.effect == ctRevoke || med.effect == ctRevoke:
				outcome = "RestoreRefusedRevoked"
			case high.effect == ctKeep || med.effect == ctKeep:
				outcome = "RestoreReleases"
			}
			for _, order := range orders {
				for _, investigated := range []bool{false, true} {
					from := "FromOpen"
					if investigated {
						from = "FromInvestigating"
					}
					name := fmt.Sprintf("high=%s,medium=%s/%s/%s/%s", high.name, med.name, order.name, from, outcome)
					t.Run(name, func(t *testing.T) {
						w := newCtWorld(t)
						medium := w.report(domain.SeverityMedium)
						highA := w.report(domain.SeverityHigh)
						if got := domain.AgentStatus(w.c.Status()); got != "suspended" {
							t.Fatalf("status with both open = %s, want suspended", got)
						}
						if investigated {
							w.investigate(medium)
							w.investigate(highA)
						}
						first, firstCloser, second, secondCloser := highA, high.name, medium, med.name
						if !order.highFirst {
							first, firstCloser, second, secondCloser = medium, med.name, highA, high.name
						}
						w.close(first, firstCloser)
						w.restore()
						w.close(second, secondCloser)
						w.restore()
						if outcome == "RestoreReleases" {
							if got := domain.AgentStatus(w.c.Status()); got != "active" || len(w.c.Holds()) != 0 {
								t.Fatalf("after the restore: status %s, holds %v, want active and none", got, w.c.Holds())
							}
						}
					})
				}
			}
		}
	}
}

func TestContainmentInvestigatingStillHolds(t *testing.T) {
	w := newCtWorld(t)
	a := w.report(domain.SeverityHigh)
	w.investigate(a)
	h := w.c.Holds()
	if len(h) != 1 || h[0].AnomalyID != a.State().ID || h[0].Containment != domain.ContainmentSuspended || h[0].Reason != "investigating" {
		t.Fatalf("holds = %+v, want the anomaly, suspended, investigating", h)
	}
	w.restore() // CONFLICT, holding_anomalies = [a]
	w.close(a, "dismiss")
	if got := domain.AgentStatus(w.c.Status()); got != "active" {
		t.Fatalf("after dismiss: status = %s, want active", got)
	}
	w.restore() // CONFLICT: nothing mitigated to release
}

func TestContainmentRestore(t *testing.T) {
	t.Run("ReleasesOnlyTheHoldsItLists", func(t *testing.T) {
		// A restore decided on one fold, applied after another anomaly was
		// mitigated, leaves the newer hold alone.
		w := newCtWorld(t)
		med := w.report(domain.SeverityMedium)
		w.close(med, "mitigated")
		if err := w.agent.Restore(&w.c, domain.RestoreAgent{}, w.meta()); err != nil {
			t.Fatal(err)
		}
		restored := ctLast(w.agent.Changes())
		high := w.report(domain.SeverityHigh)
		w.close(high, "mitigated")
		w.apply(restored)
		h := w.c.Holds()
		if len(h) != 1 || h[0].AnomalyID != high.State().ID || h[0].Reason != "mitigated" {
			t.Fatalf("holds = %+v, want only the later mitigated anomaly", h)
		}
		if got := domain.AgentStatus(w.c.Status()); got != "suspended" {
			t.Fatalf("status = %s, want suspended", got)
		}
	})
	t.Run("LaterMitigationNotReleasedByEarlierRestore", func(t *testing.T) {
		w := newCtWorld(t)
		med := w.report(domain.SeverityMedium)
		w.close(med, "mitigated")
		w.restore()
		earlier := ctLast(w.agent.Changes())
		high := w.report(domain.SeverityHigh)
		w.close(high, "mitigated")
		w.apply(earlier) // delivered again, as after a projection restart
		w.check("the earlier restore again")
		if got := domain.AgentStatus(w.c.Status()); got != "suspended" {
			t.Fatalf("status = %s, want suspended", got)
		}
		w.restore() // releases the later hold, version 2 of the agent's stream
		if got := domain.AgentStatus(w.c.Status()); got != "active" {
			t.Fatalf("status = %s, want active", got)
		}
	})
	t.Run("RefusedWhenMitigatedHoldIsShadowedByAnOpenOne", func(t *testing.T) {
		w := newCtWorld(t)
		med := w.report(domain.SeverityMedium)
		w.close(med, "mitigated")
		w.report(domain.SeverityLow) // no containment, so no hold
		w.report(domain.SeverityHigh)
		w.restore() // CONFLICT, holding_anomalies = [high]
	})
	t.Run("RefusedWhenOnlyLowSeverityAnomalies", func(t *testing.T) {
		w := newCtWorld(t)
		low := w.report(domain.SeverityLow)
		w.close(low, "mitigated")
		w.restore() // known agent, nothing held
	})
	t.Run("NotFoundWithoutAnomaly", func(t *testing.T) {
		w := newCtWorld(t)
		err := w.agent.Restore(&w.c, domain.RestoreAgent{}, w.meta())
		if domain.ErrorCode(err) != domain.ENOTFOUND || len(w.agent.Changes()) != 0 {
			t.Fatalf("err = %v, %d events; want NOT_FOUND and none", err, len(w.agent.Changes()))
		}
	})
}

func TestContainmentRevocationIsPermanent(t *testing.T) {
	revokers := []struct {
		name   string
		revoke func(w *ctWorld, high *domain.Anomaly)
	}{
		{"ByAgentRevokedResolution", func(w *ctWorld, high *domain.Anomaly) { w.close(high, "agent_revoked") }},
		{"ByManualRevoke", func(w *ctWorld, _ *domain.Anomaly) { w.revoke("credentials leaked", "") }},
	}
	for _, rv := range revokers {
		for _, later := range ctClosers {
			t.Run(rv.name+"/then_"+later.name+"/StaysRevoked", func(t *testing.T) {
				w := newCtWorld(t)
				mitigated := w.report(domain.SeverityCritical)
				w.close(mitigated, "mitigated")
				pending := w.report(domain.SeverityMedium)
				high := w.report(domain.SeverityHigh)
				rv.revoke(w, high)
				steps := []func(){
					func() { w.close(pending, later.name) },
					func() { w.restore() },
					func() { w.revoke("again", domain.ECONFLICT) },
					func() { w.close(w.report(domain.SeverityLow), "false_positive") },
					func() { w.close(w.report(domain.SeverityCritical), "false_positive") },
					func() { w.restore() },
				}
				for i, step := range steps {
					step()
					if got := domain.AgentStatus(w.c.Status()); got != "revoked" {
						t.Fatalf("step %d: status = %s, want revoked", i, got)
					}
				}
			})
		}
	}
	t.Run("AgentRevokedRevokesEvenWithoutContainment", func(t *testing.T) {
		w := newCtWorld(t)
		w.close(w.report(domain.SeverityLow), "agent_revoked")
		w.restore()
		w.revoke("again", domain.ECONFLICT)
	})
	t.Run("RevokeConflictWhenRevoked", func(t *testing.T) {
		w := newCtWorld(t)
		w.report(domain.SeverityLow)
		w.revoke("credentials leaked", "")
		w.revoke("credentials leaked", domain.ECONFLICT)
	})
	t.Run("RevokeInvalidWithoutReason", func(t *testing.T) {
		w := newCtWorld(t)
		w.report(domain.SeverityHigh)
		w.revoke("", domain.EINVALID)
		w.revoke(" \t ", domain.EINVALID)
		if got := domain.AgentStatus(w.c.Status()); got != "suspended" {
			t.Fatalf("status = %s, want suspended", got)
		}
	})
	t.Run("RevokeNotFoundWithoutAnomaly", func(t *testing.T) {
		w := newCtWorld(t)
		w.revoke("credentials leaked", domain.ENOTFOUND)
	})
	t.Run("RevokeAllowedWhileAnomaliesHold", func(t *testing.T) {
		w := newCtWorld(t)
		a := w.report(domain.SeverityCritical)
		w.investigate(a)
		w.revoke("credentials leaked", "")
		w.close(a, "false_positive")
	})
}

// A critical anomaly quarantines the agent, "revoked pending investigation",
// but only agent_revoked or a manual revoke is permanent.
func TestContainmentQuarantineIsReversible(t *testing.T) {
	want := map[string]string{ // effect → status after closing the only anomaly
		ctRelease: "active",
		ctKeep:    "quarantined",
		ctRevoke:  "revoked",
	}
	for _, cl := range ctClosers {
		name := cl.name + "/" + map[string]string{ctRelease: "ReversesQuarantine", ctKeep: "HoldsUntilRestore", ctRevoke: "RevokesForGood"}[cl.effect]
		t.Run(name, func(t *testing.T) {
			w := newCtWorld(t)
			a := w.report(domain.SeverityCritical)
			if got := domain.AgentStatus(w.c.Status()); got != "quarantined" {
				t.Fatalf("status = %s, want quarantined", got)
			}
			w.close(a, cl.name)
			if got := domain.AgentStatus(w.c.Status()); got != want[cl.effect] {
				t.Fatalf("status = %s, want %s", got, want[cl.effect])
			}
			w.restore()
			if cl.effect == ctKeep {
				if got := domain.AgentStatus(w.c.Status()); got != "active" {
					t.Fatalf("after restore: status = %s, want active", got)
				}
			}
		})
	}
}

func TestContainmentHoldsStrongestFirst(t *testing.T) {
	w := newCtWorld(t)
	w.report(domain.SeverityLow)
	mitigated := w.report(domain.SeverityMedium)
	w.report(domain.SeverityMedium)
	w.investigate(w.report(domain.SeverityHigh))
	critical := w.report(domain.SeverityCritical)
	w.close(mitigated, "mitigated")
	w.check("all reported") // the same holds as the model, strongest first
	h := w.c.Holds()
	if len(h) != 4 || h[0].AnomalyID != critical.State().ID || h[0].Containment != domain.ContainmentQuarantined ||
		h[0].Reason != "open" || h[1].Containment != domain.ContainmentSuspended || h[1].Reason != "investigating" {
		t.Fatalf("holds = %+v, want quarantined/open, suspended/investigating, then two throttled", h)
	}
	w.close(critical, "accepted_risk")
	if got := domain.AgentStatus(w.c.Status()); got != "suspended" {
		t.Fatalf("status = %s, want suspended", got)
	}
}

func TestAgentOfEveryEventType(t *testing.T) {
	w := newCtWorld(t)
	a := w.report(domain.SeverityMedium)
	w.investigate(a)
	w.close(a, "mitigated")
	b := w.report(domain.SeverityHigh)
	w.close(b, "dismiss")
	w.restore()
	w.revoke("credentials leaked", "")
	events := slices.Concat(a.Changes(), b.Changes(), w.agent.Changes())
	seen := map[string]bool{}
	for _, e := range events {
		if id, ok := domain.AgentOf(e); !ok || id != agentID {
			t.Errorf("AgentOf(%s) = %v %v, want %v", e.Type, id, ok, agentID)
		}
		seen[e.Type] = true
	}
	for _, typ := range []string{
		domain.EventAnomalyReported, domain.EventAnomalyInvestigationStarted, domain.EventAnomalyResolved,
		domain.EventAnomalyDismissed, domain.EventAgentRestored, domain.EventAgentRevoked,
	} {
		if !seen[typ] {
			t.Errorf("no %s event was checked", typ)
		}
	}
	other := events[0]
	other.Type = "anomaly.frobnicated"
	if id, ok := domain.AgentOf(other); ok {
		t.Errorf("AgentOf(unknown type) = %v, true; want false", id)
	}
}

func ctEffect(closer string) string {
	for _, c := range ctClosers {
		if c.name == closer {
			return c.effect
		}
	}
	panic("unknown closer " + closer)
}

// ctIDs renders a list of anomaly ids however the details carry it, sorted.
func ctIDs(v any) []string {
	var out []string
	switch v := v.(type) {
	case []uuid.UUID:
		for _, id := range v {
			out = append(out, id.String())
		}
	case []string:
		out = append(out, v...)
	case nil:
	default:
		out = []string{fmt.Sprintf("unexpected %T", v)}
	}
	slices.Sort(out)
	return out
}

func ctSorted(ids []uuid.UUID) []string { return ctIDs(ids) }

func ctLast(evs []domain.Event) domain.Event { return evs[len(evs)-1] }

func ctDecode(e domain.Event, v any) error { return json.Unmarshal(e.Data, v) }

// An event's decoded data is shared by its copies, but a copy whose data or
// type was replaced is read as what it now holds, never as the original.
func TestDecodedDataFollowsTheEvent(t *testing.T) {
	w := newCtWorld(t)
	a := w.report(domain.SeverityHigh)
	raw, err := eventstore.MarshalEvent(a.Changes()[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := eventstore.UnmarshalEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := domain.AgentOf(e); !ok || id != agentID {
		t.Fatalf("AgentOf = %v %v, want %v", id, ok, agentID)
	}
	other := uuid.New()
	moved := e
	moved.Data = bytes.ReplaceAll(e.Data, []byte(agentID.String()), []byte(other.String()))
	if id, ok := domain.AgentOf(moved); !ok || id != other {
		t.Errorf("AgentOf(copy with new data) = %v %v, want %v", id, ok, other)
	}
	if id, _ := domain.AgentOf(e); id != agentID {
		t.Errorf("AgentOf(original) after reading a changed copy = %v, want %v", id, agentID)
	}
	retyped := e
	retyped.Type = domain.EventAnomalyDismissed
	var c domain.AgentContainment
	if err := c.Apply(e); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(retyped); err != nil {
		t.Fatalf("apply the report's data as a dismissal: %v", err)
	}
	if c.Status() != domain.ContainmentNone {
		t.Errorf("after the dismissal the agent is %v, want no containment", c.Status())
	}
}

// TestContainmentText: every containment's wire name decodes to it, an unknown
// name is an INVALID_INPUT error that leaves the value as it was, and decoding a
// known name allocates nothing, since a replay decodes one per reported event.
func TestContainmentText(t *testing.T) {
	for _, c := range []domain.Containment{domain.ContainmentNone, domain.ContainmentThrottled,
		domain.ContainmentSuspended, domain.ContainmentQuarantined, domain.ContainmentRevoked} {
		text, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got domain.Containment = -1
		if err := got.UnmarshalText(text); err != nil || got != c {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, got, err, c)
		}
		if allocs := testing.AllocsPerRun(100, func() { _ = got.UnmarshalText(text) }); allocs != 0 {
			t.Errorf("UnmarshalText(%q) allocates %v times", text, allocs)
		}
	}
	for _, bad := range []string{"", "Suspended", "suspended ", "unknown", "contained"} {
		got := domain.ContainmentThrottled
		err := got.UnmarshalText([]byte(bad))
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("UnmarshalText(%q): error %v, want %s", bad, err, domain.EINVALID)
		}
		if got != domain.ContainmentThrottled {
			t.Errorf("UnmarshalText(%q) changed the value to %v", bad, got)
		}
	}
}
