package domain_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

var resolutions = []domain.Resolution{
	domain.ResolutionFalsePositive, domain.ResolutionMitigated,
	domain.ResolutionAcceptedRisk, domain.ResolutionAgentRevoked,
}

// agentHistory reports anomalies on one agent and resolves them, returning the
// agent's effective status after each event.
type step struct {
	report   domain.Severity   // report a new anomaly at this severity, or
	resolve  int               // resolve the anomaly with this index (1-based)
	with     domain.Resolution //   with this resolution
	wantStat string
}

func runAgent(t *testing.T, steps []step) {
	t.Helper()
	var agent domain.AgentContainment
	var anomalies []*domain.Anomaly
	for i, s := range steps {
		var ev domain.Event
		if s.report != "" {
			cmd := reportCmd(s.report)
			cmd.AnomalyID = uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprint(i)))
			a, err := domain.Report(cmd, domain.DefaultPolicy(), meta(i))
			if err != nil {
				t.Fatal(err)
			}
			anomalies = append(anomalies, a)
			ev = a.Changes()[0]
		} else {
			a := anomalies[s.resolve-1]
			if err := a.Resolve(domain.ResolveAnomaly{Resolution: s.with}, meta(i)); err != nil {
				t.Fatal(err)
			}
			ev = a.Changes()[len(a.Changes())-1]
		}
		if id, ok := domain.AgentOf(ev); !ok || id != agentID {
			t.Fatalf("step %d: AgentOf = %v %v", i, id, ok)
		}
		if err := agent.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if got := domain.AgentStatus(agent.Status()); got != s.wantStat {
			t.Fatalf("step %d (%+v): status = %s, want %s", i, s, got, s.wantStat)
		}
		checkRecord(t, agent)
	}
}

// checkRecord checks that c's record, through JSON as a snapshot keeps it,
// gives c back.
func checkRecord(t *testing.T, c domain.AgentContainment) {
	t.Helper()
	b, err := json.Marshal(c.Record())
	if err != nil {
		t.Fatal(err)
	}
	var r domain.AgentRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if back := r.Containment(); !reflect.DeepEqual(back, c) {
		t.Fatalf("containment %+v through its record %s is %+v", c.Record(), b, back.Record())
	}
}

func TestAgentContainmentSingleAnomaly(t *testing.T) {
	want := map[domain.Resolution]string{
		domain.ResolutionFalsePositive: "active",
		domain.ResolutionMitigated:     "suspended",
		domain.ResolutionAcceptedRisk:  "active",
		domain.ResolutionAgentRevoked:  "revoked",
	}
	for _, r := range resolutions {
		t.Run(string(r), func(t *testing.T) {
			runAgent(t, []step{
				{report: domain.SeverityHigh, wantStat: "suspended"},
				{resolve: 1, with: r, wantStat: want[r]},
			})
		})
	}
	t.Run("LowSeverityNeverContains", func(t *testing.T) {
		runAgent(t, []step{
			{report: domain.SeverityLow, wantStat: "active"},
			{resolve: 1, with: domain.ResolutionMitigated, wantStat: "active"},
		})
	})
	t.Run("CriticalQuarantinesAndFalsePositiveRestores", func(t *testing.T) {
		runAgent(t, []step{
			{report: domain.SeverityCritical, wantStat: "quarantined"},
			{resolve: 1, with: domain.ResolutionFalsePositive, wantStat: "active"},
		})
	})
}

// Two anomalies on one agent, medium (throttled) then high (suspended), closed
// high first and medium second, with every pair of resolutions.
func TestAgentContainmentTwoAnomalies(t *testing.T) {
	holds := func(r domain.Resolution) bool { return r == domain.ResolutionMitigated }
	for _, rHigh := range resolutions {
		for _, rMed := range resolutions {
			t.Run(string(rHigh)+"_then_"+string(rMed), func(t *testing.T) {
				afterHigh := "throttled" // the medium anomaly still holds
				if rHigh == domain.ResolutionAgentRevoked {
					afterHigh = "revoked"
				} else if holds(rHigh) {
					afterHigh = "suspended"
				}
				afterMed := "active"
				switch {
				case rHigh == domain.ResolutionAgentRevoked || rMed == domain.ResolutionAgentRevoked:
					afterMed = "revoked"
				case holds(rHigh):
					afterMed = "suspended"
				case holds(rMed):
					afterMed = "throttled"
				}
				runAgent(t, []step{
					{report: domain.SeverityMedium, wantStat: "throttled"},
					{report: domain.SeverityHigh, wantStat: "suspended"},
					{resolve: 2, with: rHigh, wantStat: afterHigh},
					{resolve: 1, with: rMed, wantStat: afterMed},
				})
			})
		}
	}
}

func TestAgentHoldsStrongestFirst(t *testing.T) {
	var agent domain.AgentContainment
	for i, sev := range []domain.Severity{domain.SeverityMedium, domain.SeverityCritical, domain.SeverityLow} {
		cmd := reportCmd(sev)
		cmd.AnomalyID = uuid.New()
		a, err := domain.Report(cmd, domain.DefaultPolicy(), meta(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := agent.Apply(a.Changes()[0]); err != nil {
			t.Fatal(err)
		}
	}
	h := agent.Holds()
	if len(h) != 2 || h[0].Containment != domain.ContainmentQuarantined || h[1].Containment != domain.ContainmentThrottled || h[0].Reason != "open" {
		t.Fatalf("holds = %+v, want quarantined then throttled, both open", h)
	}
}
