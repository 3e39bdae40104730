package app_test

import (
	"context"
	"testing"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/google/uuid"
)

var benchPrincipal = domain.Principal{
	Actor:  domain.Actor{ID: "key_bench", Kind: domain.ActorAPIKey},
	Tenant: "acme", Scopes: domain.AllScopes,
}

// newService runs the command service on an embedded NATS in a temp dir: the
// same store as the default deployment, without the network.
func newService(tb testing.TB) *app.Service {
	tb.Helper()
	svc, _ := newServiceAndStore(tb)
	return svc
}

func newServiceAndStore(tb testing.TB) (*app.Service, *jetstream.Store) {
	tb.Helper()
	store := jetstreamtest.Store(tb)
	return app.NewService(store), store
}

func reportOne(tb testing.TB, svc *app.Service, ctx context.Context) uuid.UUID {
	res, err := svc.Report(ctx, benchPrincipal, domain.ReportAnomaly{
		AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityHigh,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Anomaly.ID
}

// BenchmarkResolve measures one resolve command in process on an anomaly the
// service does not know (a restart, or evicted): load the anomaly from the
// store and check its chain, decide, append with the expected version.
func BenchmarkResolve(b *testing.B) {
	benchmarkResolve(b, app.WithCacheSize(0))
}

// BenchmarkResolveCached measures one resolve command in process on an
// anomaly the service reported: decide on the kept state, append.
func BenchmarkResolveCached(b *testing.B) {
	benchmarkResolve(b, app.WithCacheSize(b.N))
}

func benchmarkResolve(b *testing.B, opts ...app.Option) {
	ctx := context.Background()
	// As anomalyd wires it, the store keeps the heads of at least as many
	// streams as the service keeps anomalies.
	store, err := jetstream.New(ctx, jetstreamtest.JetStream(b), jetstream.Config{HeadCache: b.N})
	if err != nil {
		b.Fatal(err)
	}
	svc := app.NewService(store, opts...)
	ids := make([]uuid.UUID, b.N)
	for i := range ids {
		ids[i] = reportOne(b, svc, ctx)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		if _, err := svc.Resolve(ctx, benchPrincipal, id, domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReport measures one report command in process.
func BenchmarkReport(b *testing.B) {
	svc := newService(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		reportOne(b, svc, ctx)
	}
}
