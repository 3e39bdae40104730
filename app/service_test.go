package app_test

import (
	"context"
	"testing"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

// A client retries a command whose answer it lost (the server crashed after the
// append): run with the same command id, the command finds its own event and
// answers as before, and nothing is recorded twice.
func TestCommandIDMakesRetryAnswerAsBefore(t *testing.T) {
	svc, store := newServiceAndStore(t)
	ctx := app.WithCommandID(context.Background(), uuid.New())
	cmd := domain.ReportAnomaly{AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityHigh}

	first, err := svc.Report(ctx, benchPrincipal, cmd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Report(ctx, benchPrincipal, cmd)
	if err != nil || again.Anomaly.ID != first.Anomaly.ID || again.Position != first.Position {
		t.Fatalf("retried report = %+v, %v; want the first anomaly", again, err)
	}

	rctx := app.WithCommandID(context.Background(), uuid.New())
	res := domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated}
	r1, err := svc.Resolve(rctx, benchPrincipal, first.Anomaly.ID, res)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := svc.Resolve(rctx, benchPrincipal, first.Anomaly.ID, res)
	if err != nil || r2.Position != r1.Position || r2.Anomaly.Status != domain.StatusResolved {
		t.Fatalf("retried resolve = %+v, %v; want the first outcome, not a conflict", r2, err)
	}
	if _, err := svc.Resolve(context.Background(), benchPrincipal, first.Anomaly.ID, res); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("a new resolve: err = %v, want CONFLICT", err)
	}
	recs, err := store.ReadStream(context.Background(), domain.AnomalyStream("acme", first.Anomaly.ID), 0)
	if err != nil || len(recs) != 2 {
		t.Fatalf("stream holds %d events (%v), want 2", len(recs), err)
	}
}

func TestReportRefusesDanglingReference(t *testing.T) {
	svc, _ := newServiceAndStore(t)
	ref := uuid.New()
	_, err := svc.Report(context.Background(), benchPrincipal, domain.ReportAnomaly{
		AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityLow, ReferencesAnomalyID: &ref,
	})
	if domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("err = %v, want INVALID_INPUT", err)
	}
}
