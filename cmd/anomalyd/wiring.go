package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/anomalyd/anomalyd/idempotency"
	"github.com/anomalyd/anomalyd/metrics"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// NewLogger returns the process logger in the configured format and level.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Main is the whole server wired together. End-to-end tests run the very same
// wiring: NewMain, Open, then Close.
type Main struct {
	cfg    Config
	logger *slog.Logger

	// Anomalies is the anomaly read model the API serves. It is exposed so that
	// audit tests can alter it on purpose and see anomalyctl rebuild notice.
	Anomalies *projections.Anomalies

	nats    *server.Server // nil with an external NATS
	nc      *nats.Conn
	http    *anomalyhttp.Server
	runners []*projections.Runner
	effects *projections.Effects
	// saveSnapshot keeps the read models for the next start; Close calls it
	// once the projections have stopped.
	saveSnapshot func(ctx context.Context)
	periodic     *projections.PeriodicSnapshots // nil when snapshots are kept only at a clean stop
	startedAfter uint64                         // the position of the snapshot the read model started from
	// written is the position of the last snapshot this process wrote, and
	// writtenAt when (zeros before the first).
	writtenMu  sync.Mutex
	written    uint64
	writtenAt  time.Time
	closeStore func()
	metrics    *metrics.Metrics
	stopJWKS   context.CancelFunc
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	failed     chan error
	failOnce   sync.Once
}

// NewMain returns an unopened server for cfg.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	return &Main{cfg: cfg, logger: logger, failed: make(chan error, 1)}
}

// Open starts NATS (or connects to it), the event store, the projections and
// the HTTP server, in that order, and returns once the read model has caught up
// with the log and the API is listening.
func (m *Main) Open(ctx context.Context) error {
	opened := time.Now()
	// The snapshot is read while NATS recovers its streams; it is checked
	// against the log once the store is open.
	snapshot := m.readSnapshot()
	if err := m.openNATS(); err != nil {
		return err
	}
	js, err := njs.New(m.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	m.metrics = metrics.New()
	m.metrics.WatchNATS(m.nc.IsConnected)
	rawStore, err := m.openStore(ctx, js)
	if err != nil {
		return err
	}
	store := m.metrics.Store(rawStore)
	sink, err := natseffects.New(ctx, js, natseffects.Config{Duplicate: m.cfg.EffectsDuplicateWindow})
	if err != nil {
		return err
	}
	idem, err := idempotency.New(ctx, js, idempotency.Config{})
	if err != nil {
		return err
	}
	keys, err := auth.OpenKeyring(m.cfg.KeysFile, m.logger)
	if err != nil {
		return err
	}
	var tokens anomalyhttp.TokenVerifier
	if m.cfg.JWTSecret != "" || m.cfg.JWTJWKSURL != "" {
		v, err := auth.NewJWTVerifier(m.jwksContext(ctx), auth.JWTConfig{
			HS256Secret: []byte(m.cfg.JWTSecret), JWKSURL: m.cfg.JWTJWKSURL, Issuer: m.cfg.JWTIssuer,
			Audience: m.cfg.JWTAudience, TenantClaim: m.cfg.JWTTenantClaim,
		}, m.logger.With("component", "jwt"))
		if err != nil {
			return fmt.Errorf("bearer tokens: %w", err)
		}
		tokens = v
	}

	models, last := m.useSnapshot(ctx, store, snapshot)
	anomalies, agents, policies := models.Anomalies, models.Agents, models.Policies
	m.Anomalies = anomalies
	// The effects publisher rides on the read model's subscription (each
	// event read, decoded and folded once for both), until its queue is full:
	// then it goes on with a subscription of its own, so that a publisher
	// slowed by its sink never holds the read model back.
	m.effects = projections.NewEffects(m.metrics.Sink(sink), m.logger)
	agentsAndEffects := &projections.AgentsWithEffects{Agents: agents, Effects: m.effects}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	// The effects runner's position is the publisher's settled one, whether
	// the publisher rides on the read model or runs on its own.
	effects := projections.NewRunner("effects", store, m.effects, m.logger)
	folds := projections.Multi{anomalies, agentsAndEffects, policies}
	if m.cfg.SnapshotFile != "" && m.cfg.SnapshotEvery > 0 {
		m.periodic = &projections.PeriodicSnapshots{Models: models, Every: m.cfg.SnapshotEvery,
			Save: func(cut projections.ReadModels, last projections.EventRef) { m.writeCut(runCtx, effects, cut, last) }}
		folds = append(folds, m.periodic) // last: a cut holds each event whole
	}
	readModel := projections.NewRunner("read_model", store, folds, m.logger)
	m.runners = []*projections.Runner{readModel, effects}
	if last.Position > 0 {
		readModel.StartAfterEvent(last)
		agentsAndEffects.StartAfter(last.Position)
		m.startedAfter = last.Position
	}
	if m.cfg.SnapshotFile != "" {
		m.saveSnapshot = func(ctx context.Context) { m.writeSnapshot(ctx, models, readModel, effects) }
	}
	m.metrics.WatchProjections(rawStore, m.runners)
	m.metrics.WatchSnapshots(m.lastWritten)
	run := func(r *projections.Runner) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := r.Run(runCtx); err != nil {
				m.fail(err)
			}
		}()
	}
	agentsAndEffects.OnDetach = func(pos uint64) {
		m.logger.Warn("effects publisher falls behind the read model; it goes on with its own subscription",
			"position", pos)
		effects.StartAfter(pos)
		run(effects)
	}
	start := time.Now()
	run(readModel)
	restoreGC := projections.ReplayGC()
	err = readModel.CatchUp(ctx)
	restoreGC()
	if err != nil {
		return fmt.Errorf("read model catch-up: %w", err)
	}
	m.logger.Info("read model caught up", "position", readModel.Position(), "took", time.Since(start).Round(time.Millisecond))
	if m.periodic != nil {
		m.periodic.Arm()
	}
	m.metrics.WatchStartUp(m.startedAfter, time.Since(opened))

	svc := app.NewService(store, app.WithPolicy(policies.Get),
		app.WithContainments(projections.LiveAgents{Runner: readModel, Agents: agents}),
		app.WithCacheSize(m.cfg.CommandCache))
	m.metrics.WatchCommandCache(func() (uint64, uint64, int) {
		st := svc.CacheStats()
		return st.Hits, st.Loads, st.Kept
	})
	policySyncer := &policySync{svc: svc, keys: keys, recorded: policies, runner: readModel, logger: m.logger, source: "keys file " + m.cfg.KeysFile}
	if err := policySyncer.run(ctx); err != nil {
		return fmt.Errorf("auto-response policies: %w", err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		policySyncer.watch(runCtx)
	}()

	m.http = anomalyhttp.NewServer(anomalyhttp.Config{
		Addr:     m.cfg.Addr,
		Commands: svc,
		Reader:   anomalies, Agents: agents, Waiter: readModel,
		Keys: keys, Tokens: tokens, Idempotency: idem, Logger: m.logger,
		RateLimit: m.cfg.RateLimit, RateBurst: m.cfg.RateBurst,
		Metrics: m.metrics.Handler(), ObserveRequest: m.metrics.ObserveRequest,
		Ready: func(ctx context.Context) (map[string]string, bool) { return m.ready(ctx, rawStore) },
	})
	if err := m.http.Open(); err != nil {
		return err
	}
	m.logger.Info("anomalyd listening", "addr", "http://"+m.http.Addr(), "store", m.cfg.Store,
		"nats", m.NATSURL(), "keys_file", m.cfg.KeysFile)
	if keys.Len() == 0 {
		m.logger.Warn("no API keys yet: create one (the running server accepts it at once): " +
			"go run ./cmd/anomalyctl keys create --tenant acme --name dev --scopes " + strings.Join(domain.AllScopes, ","))
	}
	return nil
}

// snapshotRead is the outcome of reading the read models' snapshot.
type snapshotRead struct {
	snap *projections.Snapshot
	err  error
	took time.Duration
}

// readSnapshot starts reading the snapshot of the read models, if there is
// one to read, and returns where its outcome arrives; nil when snapshots are
// off.
func (m *Main) readSnapshot() <-chan snapshotRead {
	if m.cfg.SnapshotFile == "" {
		return nil
	}
	out := make(chan snapshotRead, 1)
	go func() {
		start := time.Now()
		snap, err := projections.ReadSnapshot(m.cfg.SnapshotFile)
		out <- snapshotRead{snap: snap, err: err, took: time.Since(start)}
	}()
	return out
}

// useSnapshot returns the read models that pending reads, and the last event
// folded into them, once the log confirms them; else empty ones and no event,
// and the read model replays the whole log.
func (m *Main) useSnapshot(ctx context.Context, store eventstore.Store, pending <-chan snapshotRead) (projections.ReadModels, projections.EventRef) {
	if pending == nil {
		return projections.NewReadModels(), projections.EventRef{}
	}
	var read snapshotRead
	select {
	case read = <-pending:
	case <-ctx.Done():
		return projections.NewReadModels(), projections.EventRef{}
	}
	path := m.cfg.SnapshotFile
	err := read.err
	if err == nil {
		err = read.snap.CheckLog(ctx, store)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.logger.Info("no read-model snapshot; the read model replays the whole log", "snapshot", path)
		return projections.NewReadModels(), projections.EventRef{}
	case err != nil:
		m.logger.Warn("read-model snapshot not used; the read model replays the whole log", "err", err)
		return projections.NewReadModels(), projections.EventRef{}
	}
	info := read.snap.Info
	m.logger.Info("read models loaded from snapshot; the read model replays the log after it",
		"snapshot", path, "position", info.Last.Position, "written_at", info.WrittenAt,
		"anomalies", info.Anomalies, "agents", info.Agents, "bytes", info.Bytes,
		"took", read.took.Round(time.Microsecond))
	return read.snap.Models, info.Last
}

// writeSnapshot keeps models, which readModel fed, for the next start, once
// the runners have stopped. It keeps none when effects (the effects runner)
// has not every effect of the events folded into them stored: the next start
// would not publish one that is not. The snapshot before it, if any, stays and
// is still good.
func (m *Main) writeSnapshot(ctx context.Context, models projections.ReadModels, readModel, effects *projections.Runner) {
	last := readModel.LastFolded()
	written, _ := m.lastWritten()
	switch settled := effects.Position(); {
	case last.Position == 0:
		return
	case last.Position == m.startedAfter || last.Position == written:
		return // the file holds these already: nothing was folded since
	case readModel.Err() != nil: // it may have folded part of the event it failed on
		m.logger.Warn("read-model snapshot not written: the read model stopped on an error", "err", readModel.Err())
		return
	case settled < last.Position:
		m.logger.Warn("read-model snapshot not written: not every effect of the events folded is stored",
			"position", last.Position, "effects_stored_up_to", settled)
		return
	}
	m.save(ctx, models, last, projections.SaveOptions{}, "shutdown")
}

// cutSave is how a cut is written while the service runs: on one goroutine,
// resting three times as long as it encodes, so that the encoding takes a
// quarter of one CPU from the service (with the hashing, the writing and the
// garbage collector, about 0.45 of a CPU in BenchmarkSnapshotCut). A cut of a
// million anomalies on as many agents then takes about half a minute.
var cutSave = projections.SaveOptions{Workers: 1, Share: 0.25}

// cutEffectsWait bounds how long a cut of the read models waits for the
// effects of its events to be stored; they normally are within milliseconds.
const cutEffectsWait = time.Minute

// writeCut keeps cut, the read models as of the event last, for the next
// start, as cutSave says, once effects (the effects runner) has every effect
// of the events up to last stored: the next start would not publish one that
// is not. When they are not stored within cutEffectsWait, or ctx ends, it
// keeps none; the snapshot before it stays.
func (m *Main) writeCut(ctx context.Context, effects *projections.Runner, cut projections.ReadModels, last projections.EventRef) {
	wctx, cancel := context.WithTimeout(ctx, cutEffectsWait)
	err := effects.WaitFor(wctx, last.Position)
	cancel()
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		m.logger.Warn("read-model snapshot not written: the effects of its events are not all stored; the next one tries again",
			"position", last.Position, "effects_stored_up_to", effects.Position(), "err", err)
		return
	}
	m.save(ctx, cut, last, cutSave, "periodic")
}

// save writes models, folded up to last, and logs why and how it went.
func (m *Main) save(ctx context.Context, models projections.ReadModels, last projections.EventRef, opt projections.SaveOptions, why string) {
	start := time.Now()
	info, err := projections.SaveSnapshot(ctx, m.cfg.SnapshotFile, models, last, opt)
	if err != nil && ctx.Err() != nil && why == "periodic" {
		// The service is stopping: nothing went wrong, and the stop writes a
		// snapshot of its own (or warns why it does not).
		m.logger.Info("read-model snapshot cut abandoned: the service is stopping", "position", last.Position)
		return
	}
	if err != nil {
		m.logger.Warn("read-model snapshot not written; the next start replays the log from the last one, or whole",
			"when", why, "position", last.Position, "err", err)
		return
	}
	m.writtenMu.Lock()
	m.written, m.writtenAt = last.Position, info.WrittenAt
	m.writtenMu.Unlock()
	m.logger.Info("read-model snapshot written", "when", why, "snapshot", m.cfg.SnapshotFile, "position", last.Position,
		"anomalies", info.Anomalies, "agents", info.Agents, "bytes", info.Bytes,
		"took", time.Since(start).Round(time.Millisecond))
}

// lastWritten returns the position of the last snapshot this process wrote,
// and when it wrote it; zeros before the first.
func (m *Main) lastWritten() (uint64, time.Time) {
	m.writtenMu.Lock()
	defer m.writtenMu.Unlock()
	return m.written, m.writtenAt
}

// openStore opens the configured event store; NATS carries the effects either way.
func (m *Main) openStore(ctx context.Context, js njs.JetStream) (eventstore.Store, error) {
	if m.cfg.Store == "esdb" {
		s, err := esdb.Open(ctx, esdb.Config{URL: m.cfg.ESDBURL}, m.logger.With("component", "esdb"))
		if err != nil {
			return nil, err
		}
		m.closeStore = s.Close
		return s, nil
	}
	// The store's cache of stream heads spares the lookup before an append. It
	// keeps four times as many streams as the command side keeps anomalies: it
	// also keeps the heads of resolved anomalies, which the command side
	// forgets, and each cache evicts at random on its own, so with only as many
	// heads as states, an anomaly decided without a read was often looked up
	// before its append all the same. A head costs up to about 100 bytes and
	// nothing to mark (jetstream.Config): 24 MiB for the default 262,144
	// (BENCHMARKS.md has what it gained).
	return jetstream.New(ctx, js, jetstream.Config{HeadCache: max(4*m.cfg.CommandCache, jetstream.DefaultHeadCache)})
}

func (m *Main) openNATS() error {
	if m.cfg.NATSURL != "" {
		nc, err := nats.Connect(m.cfg.NATSURL, nats.Name("anomalyd"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("connect to NATS at %s: %w", m.cfg.NATSURL, err)
		}
		m.nc = nc
		return nil
	}
	ecfg := jetstream.EmbeddedConfig{DataDir: m.cfg.DataDir, SyncAlways: m.cfg.NATSSync, DontListen: m.cfg.NATSListen == "off"}
	if !ecfg.DontListen {
		host, port, err := m.cfg.natsListen()
		if err != nil {
			return err
		}
		ecfg.Host, ecfg.Port = host, port
	}
	ns, err := jetstream.StartEmbedded(ecfg, m.logger.With("component", "nats"))
	if err != nil {
		return err
	}
	m.nats = ns
	nc, err := jetstream.ConnectEmbedded(ns, "anomalyd")
	if err != nil {
		return err
	}
	m.nc = nc
	return nil
}

// ready checks what serving needs: the store answers, NATS is connected, and
// every projection is within the configured lag of the store's head.
func (m *Main) ready(ctx context.Context, store eventstore.Store) (map[string]string, bool) {
	checks := map[string]string{"store": "ok", "nats": "ok"}
	ok := true
	if !m.nc.IsConnected() {
		checks["nats"], ok = "disconnected", false
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	head, err := store.Head(hctx)
	if err != nil {
		checks["store"], ok = "unreachable", false
	}
	for _, r := range m.runners {
		name := r.Name()
		switch pos := r.Position(); {
		case err != nil:
			checks[name] = "unknown: store unreachable"
		case head > pos && head-pos > m.cfg.ReadyMaxLag:
			checks[name], ok = fmt.Sprintf("%d positions behind", head-pos), false
		default:
			checks[name] = "ok"
		}
	}
	return checks, ok
}

// jwksContext is the lifetime of the JWKS refresh: it ends with Close, not with
// the start-up context that bounds the first fetch.
func (m *Main) jwksContext(ctx context.Context) context.Context {
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopJWKS = cancel
	return jctx
}

func (m *Main) fail(err error) {
	m.failOnce.Do(func() { m.failed <- err })
}

// Failed delivers the error of a component that stopped on its own (a
// projection that cannot fold an event); the process should then shut down.
func (m *Main) Failed() <-chan error { return m.failed }

// ReadModelStartedAfter returns the position of the snapshot that the read
// model was read from at start-up, after which it replayed the log; 0 when it
// replayed the whole log.
func (m *Main) ReadModelStartedAfter() uint64 { return m.startedAfter }

// HTTPAddr returns the address the API listens on.
func (m *Main) HTTPAddr() string { return m.http.Addr() }

// NATSURL returns the client URL of NATS: the external URL, the embedded
// server's listen URL, or "" when the embedded server opens no port.
func (m *Main) NATSURL() string {
	if m.cfg.NATSURL != "" {
		return m.cfg.NATSURL
	}
	if m.nats == nil || m.cfg.NATSListen == "off" {
		return ""
	}
	return m.nats.ClientURL()
}

// Close shuts down in reverse order of Open: HTTP (in-flight requests finish),
// projections, the event store, the NATS connection (drained), then the
// embedded server.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.http != nil {
		if err := m.http.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if m.effects != nil {
		// The effects of acknowledged commands go out before the process does;
		// if ctx ends first, the next start sends them from the log.
		if err := m.effects.Flush(ctx); err != nil {
			m.logger.Warn("effects not all published before shutdown; the next start publishes them", "err", err)
		}
	}
	if m.cancel != nil {
		m.cancel()
		m.wg.Wait()
	}
	if m.periodic != nil {
		m.periodic.Wait() // a save of a cut stops with the projections, or has finished
	}
	if m.saveSnapshot != nil {
		if ctx.Err() == nil {
			m.saveSnapshot(ctx)
		} else {
			m.logger.Warn("read-model snapshot not written: the shutdown ran out of time", "err", ctx.Err())
		}
	}
	if m.stopJWKS != nil {
		m.stopJWKS()
	}
	if m.closeStore != nil {
		m.closeStore()
	}
	if m.nc != nil {
		if err := m.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("nats drain: %w", err))
		}
		for m.nc.IsDraining() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		m.nc.Close()
	}
	if m.nats != nil {
		m.nats.Shutdown()
		m.nats.WaitForShutdown()
	}
	return errors.Join(errs...)
}
