package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"
)

// A stop writes no snapshot of read models that have folded an event whose
// effects are not all stored: the next start would begin after that event and
// never publish them. The end-to-end tests reach this check only through a
// race (an event folded between the stop's flush of the effects and the
// runners' end), so it is tested here on the two runners it reads, over a
// real embedded JetStream: first with the effects runner not yet run, then
// with it caught up.
func TestStopWritesNoSnapshotAheadOfTheStoredEffects(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	js, store := reportedStore(t, 2)
	sink, err := natseffects.New(ctx, js, natseffects.Config{})
	if err != nil {
		t.Fatal(err)
	}
	models, readModel, logs, logger := readModelOf(store)
	effects := projections.NewRunner("effects", store, projections.NewEffects(sink, logger), logger)
	run := func(r *projections.Runner) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("%s: %v", r.Name(), err)
			}
		}()
	}
	run(readModel)
	if err := readModel.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	last := readModel.LastFolded()

	path := filepath.Join(t.TempDir(), "read-models.snapshot")
	m := NewMain(Config{SnapshotFile: path}, logger)
	m.writeSnapshot(ctx, models, readModel, effects)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a snapshot was written with no effect stored (stat: %v)", err)
	}
	if want := "not every effect of the events folded is stored"; !strings.Contains(logs.String(), want) {
		t.Errorf("the stop did not say why it wrote no snapshot; logs:\n%s", logs.String())
	}

	run(effects)
	if err := effects.WaitFor(ctx, last.Position); err != nil {
		t.Fatal(err)
	}
	m.writeSnapshot(ctx, models, readModel, effects)
	kept, err := projections.ReadSnapshot(path)
	if err != nil {
		t.Fatalf("no snapshot once every effect was stored: %v", err)
	}
	if kept.Info.Last != last {
		t.Errorf("snapshot kept after %+v, want after the last event folded, %+v", kept.Info.Last, last)
	}
}

// A cut being saved when the service stops is abandoned with the stop's
// context, which is no fault: it is said at info, not as a warning that the
// next start replays the log (the stop writes its own snapshot), and the
// snapshot already kept stays as it was.
func TestAbandonedCutIsNoWarning(t *testing.T) {
	_, store := reportedStore(t, 1)
	models, readModel, logs, logger := readModelOf(store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- readModel.Run(ctx) }()
	if err := readModel.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last := readModel.LastFolded()
	path := filepath.Join(t.TempDir(), "read-models.snapshot")
	m := NewMain(Config{SnapshotFile: path}, logger)
	m.save(t.Context(), models, last, cutSave, "periodic")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no snapshot kept before the stop: %v", err)
	}

	logs.Reset()
	m.save(ctx, models, last, cutSave, "periodic") // ctx ended: the service is stopping
	if out := logs.String(); strings.Contains(out, "level=WARN") || !strings.Contains(out, "level=INFO") || !strings.Contains(out, "cut abandoned") {
		t.Errorf("an abandoned cut logged\n%s\nwant one info line that says it was abandoned", out)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the snapshot kept changed when a cut was abandoned (read: %v)", err)
	}

	logs.Reset()
	m.save(ctx, models, last, cutSave, "shutdown") // a stop's own save that cannot finish is a fault
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a stop's save that was cut short logged\n%s\nwant a warning", logs.String())
	}
}

// reportedStore returns a store on a real embedded JetStream, and that
// JetStream, holding n high-severity reports on agents of their own: each
// suspends its agent, one effect each.
func reportedStore(t *testing.T, n int) (njs.JetStream, *jetstream.Store) {
	t.Helper()
	js := jetstreamtest.JetStream(t)
	store, err := jetstream.New(t.Context(), js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := app.NewService(store)
	p := domain.Principal{Actor: domain.Actor{ID: "key_test", Kind: domain.ActorAPIKey}, Tenant: "acme", Scopes: domain.AllScopes}
	for range n {
		if _, err := svc.Report(t.Context(), p, domain.ReportAnomaly{AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityHigh}); err != nil {
			t.Fatal(err)
		}
	}
	return js, store
}

// readModelOf returns fresh read models, the runner that folds store into
// them, and a logger for them and the code under test, writing to logs.
func readModelOf(store *jetstream.Store) (models projections.ReadModels, readModel *projections.Runner, logs *bytes.Buffer, logger *slog.Logger) {
	logs = new(bytes.Buffer)
	logger = slog.New(slog.NewTextHandler(logs, nil))
	models = projections.NewReadModels()
	readModel = projections.NewRunner("read_model", store, projections.Multi{models.Anomalies, models.Agents, models.Policies}, logger)
	return models, readModel, logs, logger
}
