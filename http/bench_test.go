package http_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

type benchKeys struct{}

func (benchKeys) Authenticate(string) (domain.Principal, error) {
	return domain.Principal{Actor: domain.Actor{ID: "key_bench", Kind: domain.ActorAPIKey}, Tenant: "acme", Scopes: domain.AllScopes}, nil
}

// BenchmarkHTTPResolve measures POST /v1/anomalies/{id}/resolve through the
// whole handler chain — auth, decode, command, append to an embedded JetStream,
// wait for the read model, encode — without the network.
func BenchmarkHTTPResolve(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := jetstreamtest.Store(b)
	quiet := slog.New(slog.DiscardHandler)
	anomalies, agents := projections.NewAnomalies(), projections.NewAgents()
	runner := projections.NewRunner("read-model", store, projections.Multi{anomalies, agents}, quiet)
	go runner.Run(ctx)
	svc := app.NewService(store)
	srv := anomalyhttp.NewServer(anomalyhttp.Config{Commands: svc, Reader: anomalies, Agents: agents, Waiter: runner,
		Keys: benchKeys{}, Logger: quiet})
	h := srv.Handler()
	principal := domain.Principal{Actor: domain.Actor{ID: "key_bench", Kind: domain.ActorAPIKey}, Tenant: "acme", Scopes: domain.AllScopes}
	ids := make([]uuid.UUID, b.N)
	for i := range ids {
		res, err := svc.Report(ctx, principal, domain.ReportAnomaly{AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityHigh})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = res.Anomaly.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		req := httptest.NewRequest("POST", fmt.Sprintf("/v1/anomalies/%s/resolve", id), strings.NewReader(`{"resolution":"false_positive"}`))
		req.Header.Set("X-API-Key", "anm_bench")
		req.Header.Set("X-Tenant-ID", "acme")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("resolve: %d %s", rec.Code, rec.Body)
		}
	}
}
