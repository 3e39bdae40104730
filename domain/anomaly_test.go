package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

var (
	tenant    = "acme"
	anomalyID = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	agentID   = uuid.MustParse("22222222-2222-4222-8222-222222222222")
	t0        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alice     = domain.Actor{ID: "key_alice", Kind: domain.ActorAPIKey}
)

func meta(n int) domain.Meta {
	return domain.Meta{
		EventID: uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(n)}),
		At:      t0.Add(time.Duration(n) * time.Minute),
		Actor:   alice,
	}
}

func strp(s string) *string { return &s }

func reportCmd(sev domain.Severity) domain.ReportAnomaly {
	return domain.ReportAnomaly{Tenant: tenant, AnomalyID: anomalyID, AgentID: agentID,
		AnomalyType: "rate_spike", Severity: sev, Details: json.RawMessage(`{"rps":900}`)}
}

// given returns the events of an anomaly reported at severity sev, then the
// given resolutions applied in order (errors ignored: they set up history).
func given(t *testing.T, sev domain.Severity, resolutions ...domain.Resolution) []domain.Event {
	t.Helper()
	a, err := domain.Report(reportCmd(sev), domain.DefaultPolicy(), meta(0))
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	for i, r := range resolutions {
		if err := a.Resolve(domain.ResolveAnomaly{Resolution: r}, meta(i+1)); err != nil {
			t.Fatalf("resolve: %v", err)
		}
	}
	return a.Changes()
}

func TestReport(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*domain.ReportAnomaly)
		wantCode string
		wantAuto domain.Containment
	}{
		{"OpenWithoutContainmentWhenLow", func(c *domain.ReportAnomaly) { c.Severity = domain.SeverityLow }, "", domain.ContainmentNone},
		{"ThrottledWhenMedium", func(c *domain.ReportAnomaly) { c.Severity = domain.SeverityMedium }, "", domain.ContainmentThrottled},
		{"SuspendedWhenHigh", func(c *domain.ReportAnomaly) { c.Severity = domain.SeverityHigh }, "", domain.ContainmentSuspended},
		{"QuarantinedWhenCritical", func(c *domain.ReportAnomaly) { c.Severity = domain.SeverityCritical }, "", domain.ContainmentQuarantined},
		{"AcceptsUnknownLowerCaseType", func(c *domain.ReportAnomaly) { c.AnomalyType = "custom.detector-7" }, "", domain.ContainmentThrottled},
		{"InvalidWhenSeverityUnknown", func(c *domain.ReportAnomaly) { c.Severity = "severe" }, domain.EINVALID, 0},
		{"InvalidWhenTypeUpperCase", func(c *domain.ReportAnomaly) { c.AnomalyType = "RateSpike" }, domain.EINVALID, 0},
		{"InvalidWhenTypeEmpty", func(c *domain.ReportAnomaly) { c.AnomalyType = "" }, domain.EINVALID, 0},
		{"InvalidWhenTypeTooLong", func(c *domain.ReportAnomaly) { c.AnomalyType = strings.Repeat("a", 65) }, domain.EINVALID, 0},
		{"InvalidWhenAgentNil", func(c *domain.ReportAnomaly) { c.AgentID = uuid.Nil }, domain.EINVALID, 0},
		{"InvalidWhenTenantMalformed", func(c *domain.ReportAnomaly) { c.Tenant = "ac me" }, domain.EINVALID, 0},
		{"InvalidWhenDetailsNotObject", func(c *domain.ReportAnomaly) { c.Details = json.RawMessage(`[1,2]`) }, domain.EINVALID, 0},
		{"InvalidWhenDetailsTooLarge", func(c *domain.ReportAnomaly) {
			c.Details = json.RawMessage(`{"x":"` + strings.Repeat("a", domain.MaxDetailsBytes) + `"}`)
		}, domain.EINVALID, 0},
		{"InvalidWhenDescriptionTooLong", func(c *domain.ReportAnomaly) {
			c.Description = strp(strings.Repeat("d", domain.MaxDescriptionBytes+1))
		}, domain.EINVALID, 0},
		{"InvalidWhenReferencingItself", func(c *domain.ReportAnomaly) { id := anomalyID; c.ReferencesAnomalyID = &id }, domain.EINVALID, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := reportCmd(domain.SeverityMedium)
			tt.mutate(&cmd)
			a, err := domain.Report(cmd, domain.DefaultPolicy(), meta(0))
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if err != nil {
				return
			}
			evs := a.Changes()
			if len(evs) != 1 || evs[0].Type != domain.EventAnomalyReported || evs[0].Version != 1 {
				t.Fatalf("events = %+v, want one anomaly.reported at version 1", evs)
			}
			s := a.State()
			if s.Status != domain.StatusOpen || s.AutoResponse != tt.wantAuto || a.LoadedVersion() != 0 {
				t.Fatalf("state = %+v, want open with auto-response %v", s, tt.wantAuto)
			}
			if evs[0].Stream != domain.AnomalyStream(tenant, anomalyID) || evs[0].Actor != alice {
				t.Fatalf("event stream/actor = %v/%v", evs[0].Stream, evs[0].Actor)
			}
		})
	}
}

func TestReportDetailsDefaultToEmptyObject(t *testing.T) {
	cmd := reportCmd(domain.SeverityLow)
	cmd.Details = nil
	a, err := domain.Report(cmd, domain.DefaultPolicy(), meta(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(a.State().Details); got != "{}" {
		t.Fatalf("details = %s, want {}", got)
	}
}

func TestPolicyOverridesSeverityMapping(t *testing.T) {
	p := domain.DefaultPolicy()
	p[domain.SeverityLow] = domain.ContainmentSuspended
	a, err := domain.Report(reportCmd(domain.SeverityLow), p, meta(0))
	if err != nil {
		t.Fatal(err)
	}
	if a.State().AutoResponse != domain.ContainmentSuspended {
		t.Fatalf("auto-response = %v, want suspended", a.State().AutoResponse)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name       string
		history    []domain.Resolution
		cmd        domain.ResolveAnomaly
		wantCode   string
		wantStatus string // in the CONFLICT details
	}{
		{"ResolvedFalsePositiveWhenOpen", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}, "", ""},
		{"ResolvedMitigatedWhenOpen", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated}, "", ""},
		{"ResolvedAcceptedRiskWhenOpen", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionAcceptedRisk}, "", ""},
		{"ResolvedAgentRevokedWhenOpen", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionAgentRevoked}, "", ""},
		{"ResolvedWithNamedResolver", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, ResolvedBy: strp("bob@example.com"), Notes: strp("rotated creds")}, "", ""},
		{"ConflictWhenResolved", []domain.Resolution{domain.ResolutionMitigated}, domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}, domain.ECONFLICT, "resolved"},
		{"ConflictWhenResolvedEvenWithSameResolution", []domain.Resolution{domain.ResolutionFalsePositive}, domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}, domain.ECONFLICT, "resolved"},
		{"InvalidWhenResolutionUnknown", nil, domain.ResolveAnomaly{Resolution: "oops"}, domain.EINVALID, ""},
		{"InvalidWhenResolutionEmpty", nil, domain.ResolveAnomaly{}, domain.EINVALID, ""},
		{"InvalidWhenResolverEmpty", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, ResolvedBy: strp("")}, domain.EINVALID, ""},
		{"InvalidWhenNotesTooLong", nil, domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, Notes: strp(strings.Repeat("n", domain.MaxNotesBytes+1))}, domain.EINVALID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := domain.LoadAnomaly(given(t, domain.SeverityHigh, tt.history...))
			if err != nil {
				t.Fatal(err)
			}
			before := a.State()
			err = a.Resolve(tt.cmd, meta(9))
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if err != nil {
				if len(a.Changes()) != 0 || a.State().Version != before.Version {
					t.Fatalf("a refused command recorded %d events", len(a.Changes()))
				}
				var de *domain.Error
				if tt.wantStatus != "" && (!errors.As(err, &de) || de.Details["status"] != tt.wantStatus) {
					t.Fatalf("conflict details = %v, want status %q", err, tt.wantStatus)
				}
				return
			}
			evs := a.Changes()
			if len(evs) != 1 || evs[0].Type != domain.EventAnomalyResolved || evs[0].Version != before.Version+1 {
				t.Fatalf("events = %+v, want one anomaly.resolved", evs)
			}
			var d domain.AnomalyResolved
			if err := json.Unmarshal(evs[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			wantBy := alice.ID
			if tt.cmd.ResolvedBy != nil {
				wantBy = *tt.cmd.ResolvedBy
			}
			if d.Resolution != tt.cmd.Resolution || d.ResolvedBy != wantBy || d.AgentID != agentID || evs[0].Actor != alice {
				t.Fatalf("resolved = %+v actor %v; the principal must stay in the envelope", d, evs[0].Actor)
			}
			s := a.State()
			if s.Status != domain.StatusResolved || s.Resolution != tt.cmd.Resolution || s.ResolvedAt == nil ||
				!s.ResolvedAt.Equal(meta(9).At) || *s.ResolvedBy != wantBy || s.AutoResponse != domain.ContainmentSuspended {
				t.Fatalf("state = %+v", s)
			}
		})
	}
}

func TestLoadAnomaly(t *testing.T) {
	t.Run("NotFoundWithoutEvents", func(t *testing.T) {
		if _, err := domain.LoadAnomaly(nil); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Fatalf("err = %v, want NOT_FOUND", err)
		}
	})
	t.Run("InternalWhenVersionsSkip", func(t *testing.T) {
		evs := given(t, domain.SeverityLow, domain.ResolutionMitigated)
		evs[1].Version = 3
		if _, err := domain.LoadAnomaly(evs); domain.ErrorCode(err) != domain.EINTERNAL {
			t.Fatalf("err = %v, want INTERNAL_ERROR", err)
		}
	})
	t.Run("InternalWhenTypeUnknown", func(t *testing.T) {
		evs := given(t, domain.SeverityLow, domain.ResolutionMitigated)
		evs[1].Type = "anomaly.frobnicated"
		if _, err := domain.LoadAnomaly(evs); domain.ErrorCode(err) != domain.EINTERNAL {
			t.Fatalf("err = %v, want INTERNAL_ERROR", err)
		}
	})
}

func TestEventRoundTripsThroughWireFormat(t *testing.T) {
	for _, e := range given(t, domain.SeverityCritical, domain.ResolutionAgentRevoked) {
		b, err := eventstore.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := eventstore.UnmarshalEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != e.ID || got.Type != e.Type || got.SchemaVersion != e.SchemaVersion || got.Stream != e.Stream ||
			got.Version != e.Version || !got.OccurredAt.Equal(e.OccurredAt) || got.Actor != e.Actor ||
			string(got.Data) != string(e.Data) || got.Hash != e.Hash || domain.HashEvent(got) != e.Hash {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
	if _, err := eventstore.UnmarshalEvent([]byte(`{"type":"x"}`)); domain.ErrorCode(err) != domain.EINTERNAL {
		t.Fatalf("incomplete envelope: err = %v, want INTERNAL_ERROR", err)
	}
}

func TestConcurrencyErrorMatchesSentinel(t *testing.T) {
	err := error(&domain.ConcurrencyError{Stream: domain.AnomalyStream(tenant, anomalyID), Expected: 1, Actual: 2})
	wrapped := errors.Join(errors.New("append"), err)
	var ce *domain.ConcurrencyError
	if !errors.Is(wrapped, domain.ErrConcurrency) || !errors.As(wrapped, &ce) || domain.ErrorCode(wrapped) != domain.ECONFLICT {
		t.Fatalf("concurrency error not recognised through wrapping: %v", wrapped)
	}
}
