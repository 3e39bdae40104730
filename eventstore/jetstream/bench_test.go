package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/internal/cputime"
)

// BenchmarkAppendConcurrent appends reports to new streams from 64 goroutines,
// as the command side does under load, over each connection ConnectEmbedded
// can make: loopback TCP to a listening server, and in-process (a net.Pipe)
// to one that does not listen. It reports the CPU of the whole process (client
// and server) per append.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  jetstream.EmbeddedConfig
	}{
		{"TCP", jetstream.EmbeddedConfig{Host: "127.0.0.1", Port: -1}},
		{"InProcess", jetstream.EmbeddedConfig{DontListen: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tc.cfg.DataDir = b.TempDir()
			s, err := jetstream.StartEmbedded(tc.cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { s.Shutdown(); s.WaitForShutdown() }()
			nc, err := jetstream.ConnectEmbedded(s, "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			store := openStore(b, nc)
			ctx := context.Background()
			actor := domain.Actor{ID: "key_bench", Kind: domain.ActorAPIKey}
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on two CPUs
			cpu := cputime.Process()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := domain.Meta{EventID: uuid.New(), At: time.Now(), Actor: actor}
					a, err := domain.Report(domain.ReportAnomaly{Tenant: "acme", AnomalyID: uuid.New(), AgentID: uuid.New(),
						AnomalyType: "rate_spike", Severity: domain.SeverityHigh}, domain.DefaultPolicy(), m)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := store.Append(ctx, 0, a.Changes()[0]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}
