package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// lcFrom is DESIGN.md's lifecycle table, written out rather than taken from the
// code under test: the statuses each command moves an anomaly from. Every other
// status answers CONFLICT, terminal ones included.
var lcFrom = map[string][]domain.Status{
	"investigate": {domain.StatusOpen},
	"resolve":     {domain.StatusOpen, domain.StatusInvestigating},
	"dismiss":     {domain.StatusOpen, domain.StatusInvestigating},
}

// lcBob is the principal behind the command under test; the history is alice's,
// so the envelope shows whose event is whose.
var lcBob = domain.Actor{ID: "sub_bob", Kind: domain.ActorToken}

// lcWhen is the Meta of the command under test: an hour after the report.
func lcWhen() domain.Meta {
	return domain.Meta{EventID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("when")), At: t0.Add(time.Hour), Actor: lcBob}
}

// lcReported is the state an anomaly reported with reportCmd(high) at meta(0) must have.
func lcReported() domain.AnomalyState {
	return domain.AnomalyState{
		ID: anomalyID, Tenant: tenant, AgentID: agentID, AnomalyType: "rate_spike",
		Severity: domain.SeverityHigh, Details: json.RawMessage(`{"rps":900}`), Status: domain.StatusOpen,
		AutoResponse: domain.ContainmentSuspended, CreatedAt: t0, UpdatedAt: t0, Version: 1,
	}
}

// lcStart is a status reached through real commands: the report, then setup at meta(1).
type lcStart struct {
	name   string
	status domain.Status
	setup  func(a *domain.Anomaly, m domain.Meta) error // nil: only reported
	then   func(s *domain.AnomalyState, at time.Time)   // what setup must change
}

func lcStarts() []lcStart {
	starts := []lcStart{
		{name: "open", status: domain.StatusOpen},
		{
			name: "investigating", status: domain.StatusInvestigating,
			setup: func(a *domain.Anomaly, m domain.Meta) error {
				return a.Investigate(domain.InvestigateAnomaly{Assignee: strp("erin@example.com"), Notes: strp("triage started")}, m)
			},
			then: func(s *domain.AnomalyState, at time.Time) {
				s.Status, s.Assignee, s.Notes, s.UpdatedAt = domain.StatusInvestigating, strp("erin@example.com"), strp("triage started"), at
			},
		},
	}
	for _, r := range resolutions {
		notes := "closed as " + string(r)
		starts = append(starts, lcStart{
			name: "resolved=" + string(r), status: domain.StatusResolved,
			setup: func(a *domain.Anomaly, m domain.Meta) error {
				return a.Resolve(domain.ResolveAnomaly{Resolution: r, Notes: strp(notes)}, m)
			},
			then: func(s *domain.AnomalyState, at time.Time) {
				s.Status, s.Resolution, s.Notes, s.ResolvedBy = domain.StatusResolved, r, strp(notes), strp(alice.ID)
				s.ResolvedAt, s.UpdatedAt = &at, at
			},
		})
	}
	return append(starts, lcStart{
		name: "dismissed", status: domain.StatusDismissed,
		setup: func(a *domain.Anomaly, m domain.Meta) error {
			return a.Dismiss(domain.DismissAnomaly{Reason: "duplicate report"}, m)
		},
		then: func(s *domain.AnomalyState, at time.Time) {
			s.Status, s.DismissReason, s.ResolvedAt, s.UpdatedAt = domain.StatusDismissed, strp("duplicate report"), &at, at
		},
	})
}

// history returns the events that reach the start, and the state they must fold to.
func (st lcStart) history(t *testing.T) ([]domain.Event, domain.AnomalyState) {
	t.Helper()
	a, err := domain.Report(reportCmd(domain.SeverityHigh), domain.DefaultPolicy(), meta(0))
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	want := lcReported()
	want.Hash = a.Changes()[0].Hash // the hash chain itself is pinned by chain_test.go
	if st.setup != nil {
		if err := st.setup(a, meta(1)); err != nil {
			t.Fatalf("setup %s: %v", st.name, err)
		}
		st.then(&want, meta(1).At)
		want.Version++
		want.Hash = a.Changes()[len(a.Changes())-1].Hash
	}
	return a.Changes(), want
}

// lcCommand is a command under test, with the event and the state change DESIGN.md
// asks of it when the lifecycle accepts it.
type lcCommand struct {
	name     string
	kind     string // its row in lcFrom
	run      func(a *domain.Anomaly, m domain.Meta) error
	wantType string
	wantData func(prev domain.AnomalyState) any // the payload, as the Go type of the event
	then     func(s *domain.AnomalyState, at time.Time)
}

func lcCommands() []lcCommand {
	cmds := []lcCommand{
		{
			name: "investigate", kind: "investigate", wantType: domain.EventAnomalyInvestigationStarted,
			run: func(a *domain.Anomaly, m domain.Meta) error { return a.Investigate(domain.InvestigateAnomaly{}, m) },
			wantData: func(domain.AnomalyState) any {
				return domain.AnomalyInvestigationStarted{AnomalyID: anomalyID, AgentID: agentID}
			},
			then: func(s *domain.AnomalyState, at time.Time) {
				s.Status, s.Assignee, s.UpdatedAt = domain.StatusInvestigating, nil, at
			},
		},
		{
			name: "investigate+assignee+notes", kind: "investigate", wantType: domain.EventAnomalyInvestigationStarted,
			run: func(a *domain.Anomaly, m domain.Meta) error {
				return a.Investigate(domain.InvestigateAnomaly{Assignee: strp("dave@example.com"), Notes: strp("checking logs")}, m)
			},
			wantData: func(domain.AnomalyState) any {
				return domain.AnomalyInvestigationStarted{AnomalyID: anomalyID, AgentID: agentID,
					Assignee: strp("dave@example.com"), Notes: strp("checking logs")}
			},
			then: func(s *domain.AnomalyState, at time.Time) {
				s.Status, s.Assignee, s.Notes, s.UpdatedAt = domain.StatusInvestigating, strp("dave@example.com"), strp("checking logs"), at
			},
		},
	}
	// Each resolution once, with and without notes and a named resolver, so that
	// both "resolved_by defaults to the principal" and "kept as given" show.
	resolves := []domain.ResolveAnomaly{
		{Resolution: domain.ResolutionFalsePositive, Notes: strp("benign batch job")},
		{Resolution: domain.ResolutionMitigated, Notes: strp("rotated credentials"), ResolvedBy: strp("carol@example.com")},
		{Resolution: domain.ResolutionAcceptedRisk},
		{Resolution: domain.ResolutionAgentRevoked, Notes: strp("credentials leaked"), ResolvedBy: strp("carol@example.com")},
	}
	for _, cmd := range resolves {
		by := lcBob.ID // the authenticated principal of lcWhen
		if cmd.ResolvedBy != nil {
			by = *cmd.ResolvedBy
		}
		cmds = append(cmds, lcCommand{
			name: "resolve=" + string(cmd.Resolution), kind: "resolve", wantType: domain.EventAnomalyResolved,
			run: func(a *domain.Anomaly, m domain.Meta) error { return a.Resolve(cmd, m) },
			wantData: func(domain.AnomalyState) any {
				return domain.AnomalyResolved{AnomalyID: anomalyID, AgentID: agentID, Resolution: cmd.Resolution,
					Notes: cmd.Notes, ResolvedBy: by}
			},
			then: func(s *domain.AnomalyState, at time.Time) {
				s.Status, s.Resolution, s.ResolvedBy = domain.StatusResolved, cmd.Resolution, strp(by)
				if cmd.Notes != nil { // a resolution without notes keeps the investigator's
					s.Notes = cmd.Notes
				}
				s.ResolvedAt, s.UpdatedAt = &at, at
			},
		})
	}
	return append(cmds, lcCommand{
		name: "dismiss", kind: "dismiss", wantType: domain.EventAnomalyDismissed,
		run: func(a *domain.Anomaly, m domain.Meta) error {
			return a.Dismiss(domain.DismissAnomaly{Reason: "not reproducible"}, m)
		},
		wantData: func(domain.AnomalyState) any {
			return domain.AnomalyDismissed{AnomalyID: anomalyID, AgentID: agentID, Reason: "not reproducible"}
		},
		then: func(s *domain.AnomalyState, at time.Time) {
			s.Status, s.DismissReason, s.ResolvedAt, s.UpdatedAt = domain.StatusDismissed, strp("not reproducible"), &at, at
		},
	})
}

// TestLifecycle runs every command from every status: given the events that
// reach the status, when the command runs, then either exactly one event and
// the state DESIGN.md asks for, or a CONFLICT naming the current status and no event.
func TestLifecycle(t *testing.T) {
	type lcCase struct {
		name     string
		start    lcStart
		cmd      lcCommand
		wantCode string
	}
	var tests []lcCase
	for _, st := range lcStarts() {
		for _, cmd := range lcCommands() {
			tc := lcCase{start: st, cmd: cmd}
			if slices.Contains(lcFrom[cmd.kind], st.status) {
				var to domain.AnomalyState
				cmd.then(&to, t0)
				tc.name = st.name + "/" + cmd.name + "/MovesTo" + lcTitle(string(to.Status))
			} else {
				tc.wantCode = domain.ECONFLICT
				tc.name = st.name + "/" + cmd.name + "/ConflictWhen" + lcTitle(string(st.status))
			}
			tests = append(tests, tc)
		}
	}
	if len(tests) != 7*7 {
		t.Fatalf("%d cases, want 7 starting statuses × 7 commands", len(tests))
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			history, wantBefore := tt.start.history(t)
			a, err := domain.LoadAnomaly(history)
			if err != nil {
				t.Fatal(err)
			}
			before := a.State()
			lcSameState(t, "given "+tt.start.name, before, wantBefore)
			if t.Failed() {
				t.FailNow()
			}

			m := lcWhen()
			err = tt.cmd.run(a, m)
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if err != nil {
				var de *domain.Error
				if !errors.As(err, &de) || de.Details["status"] != string(before.Status) {
					t.Errorf("conflict details = %v, want status %q", de, before.Status)
				}
				if n := len(a.Changes()); n != 0 {
					t.Errorf("a refused command recorded %d events", n)
				}
				lcSameState(t, "after refusal", a.State(), before)
				return
			}

			evs := a.Changes()
			if len(evs) != 1 {
				t.Fatalf("recorded %d events, want 1", len(evs))
			}
			e := evs[0]
			if e.Type != tt.cmd.wantType || e.Version != before.Version+1 || e.ID != m.EventID ||
				e.Stream != domain.AnomalyStream(tenant, anomalyID) || e.TenantID != tenant ||
				!e.OccurredAt.Equal(m.At) || e.Actor != lcBob {
				t.Errorf("event = %s v%d id %s stream %v tenant %s at %s actor %v; want %s v%d id %s at %s by %v",
					e.Type, e.Version, e.ID, e.Stream, e.TenantID, e.OccurredAt, e.Actor,
					tt.cmd.wantType, before.Version+1, m.EventID, m.At, lcBob)
			}
			wantData := tt.cmd.wantData(before)
			gotData := reflect.New(reflect.TypeOf(wantData))
			if err := json.Unmarshal(e.Data, gotData.Interface()); err != nil {
				t.Fatalf("decode %s: %v", e.Type, err)
			}
			if !reflect.DeepEqual(gotData.Elem().Interface(), wantData) {
				wantJSON, _ := json.Marshal(wantData)
				t.Errorf("payload = %s, want %s", e.Data, wantJSON)
			}

			want := before
			tt.cmd.then(&want, m.At)
			want.Version++
			want.Hash = evs[len(evs)-1].Hash
			after := a.State()
			lcSameState(t, "after "+tt.cmd.name, after, want)
			if a.LoadedVersion() != before.Version {
				t.Errorf("loaded version = %d, want %d", a.LoadedVersion(), before.Version)
			}

			all := slices.Concat(history, evs)
			reloaded, err := domain.LoadAnomaly(all)
			if err != nil {
				t.Fatalf("reload: %v", err)
			}
			lcSameState(t, "reload", reloaded.State(), after)

			var wire []domain.Event
			for _, e := range all {
				wire = append(wire, lcRoundTrip(t, e))
			}
			fromWire, err := domain.LoadAnomaly(wire)
			if err != nil {
				t.Fatalf("reload from wire: %v", err)
			}
			lcSameState(t, "reload from wire", fromWire.State(), after)
		})
	}
}

// TestLifecycleInputRules checks that a command with a bad input is refused with
// INVALID_INPUT naming the field, from every status that would accept it, and
// records nothing.
func TestLifecycleInputRules(t *testing.T) {
	long := strings.Repeat("n", domain.MaxNotesBytes+1)
	atLimit := strings.Repeat("n", domain.MaxNotesBytes)
	tests := []struct {
		name      string
		kind      string
		run       func(a *domain.Anomaly, m domain.Meta) error
		wantCode  string
		wantField string
	}{
		{"InvalidWhenDismissReasonMissing", "dismiss", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Dismiss(domain.DismissAnomaly{}, m)
		}, domain.EINVALID, "reason"},
		{"InvalidWhenDismissReasonBlank", "dismiss", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Dismiss(domain.DismissAnomaly{Reason: " \t\n "}, m)
		}, domain.EINVALID, "reason"},
		{"InvalidWhenAssigneeEmpty", "investigate", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Investigate(domain.InvestigateAnomaly{Assignee: strp("")}, m)
		}, domain.EINVALID, "assignee"},
		{"InvalidWhenAssigneeBlank", "investigate", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Investigate(domain.InvestigateAnomaly{Assignee: strp("   ")}, m)
		}, domain.EINVALID, "assignee"},
		{"InvalidWhenInvestigateNotesTooLong", "investigate", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Investigate(domain.InvestigateAnomaly{Assignee: strp("dave"), Notes: strp(long)}, m)
		}, domain.EINVALID, "notes"},
		{"InvalidWhenResolveNotesTooLong", "resolve", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, Notes: strp(long)}, m)
		}, domain.EINVALID, "notes"},
		{"AcceptsInvestigateNotesAtLimit", "investigate", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Investigate(domain.InvestigateAnomaly{Notes: strp(atLimit)}, m)
		}, "", ""},
		{"AcceptsResolveNotesAtLimit", "resolve", func(a *domain.Anomaly, m domain.Meta) error {
			return a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, Notes: strp(atLimit)}, m)
		}, "", ""},
	}
	for _, st := range lcStarts() {
		for _, tt := range tests {
			if !slices.Contains(lcFrom[tt.kind], st.status) {
				continue
			}
			t.Run(st.name+"/"+tt.name, func(t *testing.T) {
				history, _ := st.history(t)
				a, err := domain.LoadAnomaly(history)
				if err != nil {
					t.Fatal(err)
				}
				before := a.State()
				err = tt.run(a, lcWhen())
				if got := domain.ErrorCode(err); got != tt.wantCode {
					t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
				}
				if err == nil {
					if n := len(a.Changes()); n != 1 {
						t.Fatalf("recorded %d events, want 1", n)
					}
					return
				}
				var de *domain.Error
				if !errors.As(err, &de) || de.Details["field"] != tt.wantField {
					t.Errorf("details = %v, want field %q", de, tt.wantField)
				}
				if n := len(a.Changes()); n != 0 {
					t.Errorf("a refused command recorded %d events", n)
				}
				lcSameState(t, "after refusal", a.State(), before)
			})
		}
	}
}

// lcTitle turns "investigation_started" into "InvestigationStarted".
func lcTitle(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// lcSameState reports every field in which got differs from want; times compare
// as instants.
func lcSameState(t *testing.T, what string, got, want domain.AnomalyState) {
	t.Helper()
	g, w := lcFields(got), lcFields(want)
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if g[k] != w[k] {
			t.Errorf("%s: %s = %s, want %s", what, k, g[k], w[k])
		}
	}
}

// lcFields renders each field of s by reflection, so that a field added to
// AnomalyState is compared without this test being told.
func lcFields(s domain.AnomalyState) map[string]string {
	v := reflect.ValueOf(s)
	out := make(map[string]string, v.NumField())
	for i := range v.NumField() {
		out[v.Type().Field(i).Name] = lcRender(v.Field(i).Interface())
	}
	return out
}

func lcRender(x any) string {
	switch x := x.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case *time.Time:
		if x == nil {
			return "<nil>"
		}
		return x.UTC().Format(time.RFC3339Nano)
	case *string:
		if x == nil {
			return "<nil>"
		}
		return strconv.Quote(*x)
	case *uuid.UUID:
		if x == nil {
			return "<nil>"
		}
		return x.String()
	case json.RawMessage:
		return string(x)
	}
	v := reflect.ValueOf(x)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "<nil>"
		}
		return fmt.Sprintf("&%v", v.Elem().Interface())
	}
	return fmt.Sprint(x)
}

// lcRoundTrip passes e through the wire format and fails unless it comes back unchanged.
func lcRoundTrip(t *testing.T, e domain.Event) domain.Event {
	t.Helper()
	b, err := eventstore.MarshalEvent(e)
	if err != nil {
		t.Fatalf("marshal %s: %v", e.Type, err)
	}
	got, err := eventstore.UnmarshalEvent(b)
	if err != nil {
		t.Fatalf("unmarshal %s: %v", e.Type, err)
	}
	if got.ID != e.ID || got.Type != e.Type || got.Stream != e.Stream || got.Version != e.Version ||
		got.TenantID != e.TenantID || !got.OccurredAt.Equal(e.OccurredAt) || got.Actor != e.Actor ||
		string(got.Data) != string(e.Data) {
		t.Errorf("wire round trip of %s: got %+v, want %+v", e.Type, got, e)
	}
	return got
}
