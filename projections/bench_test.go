package projections_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/anomalyd/anomalyd/internal/cputime"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"
)

// benchLog builds n anomalies, half of them resolved, across tenants and
// agents, as the command side records them.
func benchLog(b *testing.B, n int) []eventstore.Recorded {
	b.Helper()
	var out []eventstore.Recorded
	pos := uint64(0)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agents := make([]uuid.UUID, max(1, n/4))
	for i := range agents {
		agents[i] = uuid.New()
	}
	for i := range n {
		tenant := []string{"acme", "globex", "initech", "umbrella"}[i%4]
		m := domain.Meta{EventID: uuid.New(), At: at.Add(time.Duration(i) * time.Millisecond), Actor: actor}
		a, err := domain.Report(domain.ReportAnomaly{Tenant: tenant, AnomalyID: uuid.New(), AgentID: agents[i%len(agents)],
			AnomalyType: "rate_spike", Severity: domain.SeverityHigh}, domain.DefaultPolicy(), m)
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			m.EventID = uuid.New()
			if err := a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}, m); err != nil {
				b.Fatal(err)
			}
		}
		for _, e := range a.Changes() {
			pos++
			out = append(out, eventstore.Recorded{Event: e, Position: pos})
		}
	}
	return out
}

// BenchmarkReadModelApply measures the decode and fold of the read models
// (anomalies, agents, policies) without a store, events per second: each event
// is decoded from the bytes the store keeps, as a replay gets it.
func BenchmarkReadModelApply(b *testing.B) {
	log := benchLog(b, 20000)
	raw := make([][]byte, len(log))
	for i, r := range log {
		var err error
		if raw[i], err = eventstore.MarshalEvent(r.Event); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	applied := 0
	for b.Loop() {
		m := projections.Multi{projections.NewAnomalies(), projections.NewAgents(), projections.NewPolicies()}
		for i, r := range log {
			ev, err := eventstore.UnmarshalEvent(raw[i])
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Apply(ctx, eventstore.Recorded{Event: ev, Position: r.Position}); err != nil {
				b.Fatal(err)
			}
		}
		applied += len(log)
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
}

// storedLog appends benchLog(10000) (15,000 events) to a fresh JetStream
// store and returns the store, its JetStream context and the last position.
func storedLog(b *testing.B) (*jetstream.Store, njs.JetStream, uint64) {
	b.Helper()
	js := jetstreamtest.JetStream(b)
	ctx := context.Background()
	store, err := jetstream.New(ctx, js, jetstream.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var head uint64
	versions := map[domain.StreamID]uint64{}
	for _, r := range benchLog(b, 10000) {
		rec, err := store.Append(ctx, versions[r.Stream], r.Event)
		if err != nil {
			b.Fatal(err)
		}
		versions[r.Stream] = r.Version
		head = rec.Position
	}
	return store, js, head
}

// BenchmarkReplayFromStore measures a full replay of a JetStream log into fresh
// read models, as at start-up: read, decode and fold, events per second.
func BenchmarkReplayFromStore(b *testing.B) {
	store, _, head := storedLog(b)
	ctx := context.Background()
	defer projections.ReplayGC()() // as the start-up and anomalyctl rebuild replay
	b.ReportAllocs()
	b.ResetTimer()
	replayed := 0
	done := errors.New("done")
	cpu := cputime.Process()
	for b.Loop() {
		m := projections.Multi{projections.NewAnomalies(), projections.NewAgents(), projections.NewPolicies()}
		err := store.Subscribe(ctx, 0, func(r eventstore.Recorded) error {
			if err := m.Apply(ctx, r); err != nil {
				return err
			}
			replayed++
			if r.Position >= head {
				return done
			}
			return nil
		})
		if !errors.Is(err, done) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(replayed)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/1e3/float64(replayed), "cpu-µs/event")
}

// BenchmarkReplayCeiling measures what bounds BenchmarkReplayFromStore, on
// the same log: "Read" takes every message of the events stream through an
// ordered consumer, as Subscribe does, and reads only its stream sequence
// (NATS alone: the server's delivery, the client's parsing, the iterator);
// "Decode" is Subscribe with nothing folded (NATS and the envelope's decode).
// Events per second, and the CPU of the whole process per event.
func BenchmarkReplayCeiling(b *testing.B) {
	store, js, head := storedLog(b)
	ctx := context.Background()
	defer projections.ReplayGC()() // as BenchmarkReplayFromStore, to compare with it
	measure := func(b *testing.B, replay func() error) {
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			if err := replay(); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N) * float64(head)
		b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/1e3/n, "cpu-µs/event")
	}
	b.Run("Read", func(b *testing.B) {
		measure(b, func() error {
			cons, err := js.OrderedConsumer(ctx, jetstream.DefaultStream, njs.OrderedConsumerConfig{})
			if err != nil {
				return err
			}
			it, err := cons.Messages()
			if err != nil {
				return err
			}
			defer func() { // as Subscribe does, after the iterator stops
				if info := cons.CachedInfo(); info != nil {
					js.DeleteConsumer(ctx, jetstream.DefaultStream, info.Name)
				}
			}()
			defer it.Stop()
			for {
				m, err := it.Next()
				if err != nil {
					return err
				}
				md, err := m.Metadata()
				if err != nil {
					return err
				}
				if md.Sequence.Stream >= head {
					return nil
				}
			}
		})
	})
	b.Run("Decode", func(b *testing.B) {
		done := errors.New("done")
		measure(b, func() error {
			err := store.Subscribe(ctx, 0, func(r eventstore.Recorded) error {
				if r.Position >= head {
					return done
				}
				return nil
			})
			if errors.Is(err, done) {
				return nil
			}
			return err
		})
	})
}

// BenchmarkReadModelMemory folds one million reported anomalies (on 250,000
// agents, four tenants), each read back from its stored form as a replay reads
// it, into the read models and reports the live heap they hold, and how many
// heap objects per anomaly: what each garbage collection has to mark. Run it
// alone: go test -run '^$' -bench ReadModelMemory -benchtime 1x ./projections
func BenchmarkReadModelMemory(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	agents := make([]uuid.UUID, n/4)
	for i := range agents {
		agents[i] = uuid.New()
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		an, ag := projections.NewAnomalies(), projections.NewAgents()
		m := projections.Multi{an, ag}
		for i := range n {
			tenant := []string{"acme", "globex", "initech", "umbrella"}[i%4]
			a, err := domain.Report(domain.ReportAnomaly{Tenant: tenant, AnomalyID: uuid.New(), AgentID: agents[i%len(agents)],
				AnomalyType: "rate_spike", Severity: domain.SeverityHigh, Details: []byte(`{"rps":950,"window":"1m"}`)},
				domain.DefaultPolicy(), domain.Meta{EventID: uuid.New(), At: at.Add(time.Duration(i)), Actor: actor})
			if err != nil {
				b.Fatal(err)
			}
			stored, err := eventstore.MarshalEvent(a.Changes()[0])
			if err != nil {
				b.Fatal(err)
			}
			e, err := eventstore.UnmarshalEvent(stored)
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Apply(ctx, eventstore.Recorded{Event: e, Position: uint64(i + 1)}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-live")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/n, "objects/anomaly")
		runtime.KeepAlive(an)
		runtime.KeepAlive(ag)
	}
}

// snapshotModels folds benchLog(n) into read models and returns them with the
// last event folded.
func snapshotModels(b *testing.B, n int) (projections.ReadModels, projections.EventRef) {
	b.Helper()
	log := benchLog(b, n)
	m := projections.NewReadModels()
	for _, r := range log {
		if err := (projections.Multi{m.Anomalies, m.Agents, m.Policies}).Apply(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	return m, projections.RefOf(log[len(log)-1])
}

// BenchmarkSnapshotSave measures writing the read models of 100,000
// anomalies (25,000 agents) as a snapshot, as a clean shutdown does, synced
// file included: anomalies per second and MB written per second.
func BenchmarkSnapshotSave(b *testing.B) {
	m, last := snapshotModels(b, 100_000)
	path := filepath.Join(b.TempDir(), "read-models.snapshot")
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		info, err := projections.SaveSnapshot(context.Background(), path, m, last, projections.SaveOptions{})
		if err != nil {
			b.Fatal(err)
		}
		bytes += info.Bytes
	}
	b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "anomalies/s")
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkSnapshotRead measures reading that snapshot back into fresh read
// models, as a start-up does before it checks the log: anomalies per second.
func BenchmarkSnapshotRead(b *testing.B) {
	m, last := snapshotModels(b, 100_000)
	path := filepath.Join(b.TempDir(), "read-models.snapshot")
	saved, err := projections.SaveSnapshot(context.Background(), path, m, last, projections.SaveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, err := projections.ReadSnapshot(path)
		if err != nil {
			b.Fatal(err)
		}
		if s.Info.Anomalies != 100_000 {
			b.Fatalf("%d anomalies read", s.Info.Anomalies)
		}
	}
	b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "anomalies/s")
	b.ReportMetric(float64(int64(b.N)*saved.Bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkSnapshotCut measures the pause of the read model while a snapshot
// is cut from it as it runs (ReadModels.Cut: its indexes copied) for 100,000
// anomalies on 25,000 agents, and the save of the cut on one goroutine, with
// no rest and with the rest a running service gives it (a quarter of the
// time encoding): anomalies per second, and CPU seconds per wall second.
func BenchmarkSnapshotCut(b *testing.B) {
	m, last := snapshotModels(b, 100_000)
	b.Run("Cut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Cut()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/cut")
	})
	for _, share := range []float64{0, 0.25} {
		b.Run(fmt.Sprintf("SaveOnOneGoroutine/share=%v", share), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "read-models.snapshot")
			cut := m.Cut()
			cpu := cputime.Process()
			for b.Loop() {
				if _, err := projections.SaveSnapshot(context.Background(), path, cut, last, projections.SaveOptions{Workers: 1, Share: share}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "anomalies/s")
			b.ReportMetric((cputime.Process()-cpu).Seconds()/b.Elapsed().Seconds(), "cpus")
		})
	}
}
