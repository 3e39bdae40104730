// Command anomalybench is the load tool of anomalyd: it reports and resolves
// anomalies over the HTTP API with concurrent keep-alive clients, measures
// throughput, latency and the delay until each command's agent effect reaches
// a NATS subscriber, and compares the resolve rate with what JetStream alone
// gives for the same appends. `anomalybench --help` describes every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "anomalybench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "anomalybench:", err)
		os.Exit(1)
	}
	if cfg.JSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "anomalybench:", err)
		os.Exit(1)
	}
	if !rep.Clean() {
		os.Exit(1)
	}
}

// serverStopGrace is how long a started anomalyd has to stop after SIGTERM.
const serverStopGrace = 30 * time.Second

// Run runs the phases that cfg asks for and returns their report, writing
// progress lines to progress. It returns an error only when it cannot run at
// all (no server, no NATS); a run cut short by cfg.MaxDuration or by ctx is
// reported, with the problem named, and is not Clean.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	rep := &Report{
		Target: cfg.Target, Server: "external", Tenants: cfg.Tenants, Agents: cfg.agents(), Anomalies: cfg.Anomalies, Prefill: cfg.Prefill,
		Clients: cfg.Clients, Rate: cfg.Rate, NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), ClientProcs: cfg.ClientProcs,
	}
	natsURL := cfg.NATSURL
	tenants := []tenantKey{{tenant: cfg.Tenant, key: cfg.Key}}
	if cfg.Target == "" {
		tmp, err := os.MkdirTemp("", "anomalybench-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		bin := cfg.Anomalyd
		if bin == "" {
			fmt.Fprintln(progress, "building ./cmd/anomalyd")
			if bin, err = buildAnomalyd(ctx, tmp); err != nil {
				return nil, err
			}
		}
		dataDir := filepath.Join(tmp, "data")
		if cfg.DataDir != "" {
			dataDir = cfg.DataDir
		}
		names := make([]string, cfg.Tenants)
		for i := range names {
			names[i] = fmt.Sprintf("bench-%d", i)
		}
		keys, err := createKeys(dataDir, names)
		if err != nil {
			return nil, err
		}
		tenants = tenants[:0]
		for _, n := range names {
			tenants = append(tenants, tenantKey{tenant: n, key: keys[n]})
		}
		srv, err := startServer(ctx, bin, dataDir)
		if err != nil {
			return nil, err
		}
		stopped := false
		var stopTook time.Duration
		stopServer := func() {
			if !stopped {
				stopped = true
				t0 := time.Now()
				if err := srv.stop(serverStopGrace); err != nil {
					rep.Problems = append(rep.Problems, err.Error())
				}
				stopTook = time.Since(t0)
				l := srv.log.summary()
				rep.ServerLog = &l
			}
		}
		defer stopServer()
		rep.Server, rep.Target, natsURL = "started", srv.base, srv.natsURL
		fmt.Fprintf(progress, "anomalyd listening at %s, NATS at %s\n", srv.base, srv.natsURL)
		if err := runLoad(ctx, cfg, rep, tenants, natsURL, progress); err != nil {
			return nil, err
		}
		// The raw ceiling gets the machine to itself.
		stopServer()
		if cfg.Restart && ctx.Err() == nil && len(rep.Problems) == 0 {
			rep.Restart = measureRestart(ctx, bin, dataDir, rep, progress)
			if rep.Restart != nil {
				rep.Restart.StopSeconds = stopTook.Seconds()
			}
		}
	} else if err := runLoad(ctx, cfg, rep, tenants, natsURL, progress); err != nil {
		return nil, err
	}

	if cfg.Raw && ctx.Err() == nil {
		raw, err := rawCeiling(ctx, cfg, cfg.NATSURL, progress)
		if err != nil {
			return nil, err
		}
		rep.Phases = append(rep.Phases, raw...)
		rep.Ratios = ratios(rep)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rep.Problems = append(rep.Problems, fmt.Sprintf("cut short by --max-duration %s", cfg.MaxDuration))
	case ctx.Err() != nil:
		rep.Problems = append(rep.Problems, "interrupted")
	}
	return rep, nil
}

// ratios relates the phases' throughputs to the raw ceiling; nil when no
// ratio can be formed (a phase is missing or the ceiling measured nothing).
func ratios(rep *Report) *Ratios {
	pub, rw := rep.Phase("raw-publish"), rep.Phase("raw-read-write")
	over := func(name string, ceiling *PhaseResult) float64 {
		p := rep.Phase(name)
		if p == nil || ceiling == nil || ceiling.Throughput <= 0 {
			return 0
		}
		return p.Throughput / ceiling.Throughput
	}
	r := Ratios{
		ResolveOverRawPublish: over("resolve", pub), ResolveOverRawReadWrite: over("resolve", rw),
		InProcessReportOverRawPublish:    over("in-process-report", pub),
		InProcessResolveOverRawPublish:   over("in-process-resolve", pub),
		InProcessResolveOverRawReadWrite: over("in-process-resolve", rw),
	}
	if r == (Ratios{}) {
		return nil
	}
	return &r
}

// measureRestart starts bin again on the log in dataDir and times its start:
// until it listens, once its read model has replayed the log (after the
// snapshot of its read models the first run kept at its shutdown, unless the
// server's environment turns snapshots off), and until
// /readyz answers 200, once the effects publisher has folded it too. It notes
// a problem in rep when the server does not start, get ready or stop.
func measureRestart(ctx context.Context, bin, dataDir string, rep *Report, progress io.Writer) *Restart {
	fmt.Fprintln(progress, "restart: starting anomalyd again on the log of the load")
	srv, err := startServer(ctx, bin, dataDir)
	if err != nil {
		rep.Problems = append(rep.Problems, "restart: "+err.Error())
		return nil
	}
	listening := time.Since(srv.started)
	r := &Restart{
		Events: srv.caughtUp.position, ListeningSeconds: listening.Seconds(),
		ReplaySeconds:    srv.caughtUp.took.Seconds(),
		SnapshotPosition: srv.snapshot.position, SnapshotSeconds: srv.snapshot.took.Seconds(),
	}
	ready, err := srv.waitReady(ctx)
	if err != nil {
		rep.Problems = append(rep.Problems, "restart: "+err.Error())
	} else {
		r.ReadySeconds = ready.Sub(srv.started).Seconds()
	}
	fmt.Fprintf(progress, "restart: listening after %.2f s, ready after %.2f s, %d events in the log\n",
		r.ListeningSeconds, r.ReadySeconds, r.Events)
	if err := srv.stop(serverStopGrace); err != nil {
		rep.Problems = append(rep.Problems, "restart: "+err.Error())
	}
	return r
}

// runLoad runs the HTTP phases against the server at rep.Target and, when
// natsURL is known, measures the delay of the effects they cause.
func runLoad(ctx context.Context, cfg Config, rep *Report, tenants []tenantKey, natsURL string, progress io.Writer) error {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cfg.ClientProcs))
	var w *watcher
	if natsURL != "" {
		var err error
		if w, err = watchEffects(natsURL); err != nil {
			return err
		}
		defer w.close()
	} else {
		rep.Notes = append(rep.Notes, "effect delay not measured: pass --nats with --target")
	}

	if cfg.Prefill > 0 {
		if err := prefill(ctx, cfg, rep, tenants, w, progress); err != nil || ctx.Err() != nil {
			return err
		}
	}

	wl, err := newWorkload(rep.Target, tenants, cfg.Anomalies, cfg.agents(), cfg.Clients, cfg.RequestTimeout)
	if err != nil {
		return err
	}
	defer wl.close()
	report := newPhase("report", cfg.Anomalies, cfg.Clients, 0)
	measure(ctx, rep, wl, report, wl.report, reportRoute, progress)
	if ctx.Err() != nil {
		return nil
	}

	order := wl.reported()
	suspended := expectation{phase: "report", typ: "agent.suspended", want: map[effectKey]bool{}, answered: map[string]time.Time{}}
	for _, i := range order {
		suspended.want[effectKey{suspended.typ, wl.agents[wl.agentOf(i)].String()}] = true
		suspended.answered[wl.ids[i]] = report.done[i]
	}
	if w != nil {
		// The effects of the resolves queue behind those of the reports: let
		// the reports' drain first, so that the resolves' delay is their own.
		fmt.Fprintf(progress, "effects: %d/%d agent.suspended arrived, waiting up to %s for the rest before resolving\n",
			w.count(suspended.want), len(suspended.want), cfg.EffectWait)
		w.waitFor(ctx, suspended.want, cfg.EffectWait)
		if ctx.Err() != nil {
			return nil
		}
	}

	resolve := newPhase("resolve", len(order), cfg.Clients, cfg.Rate)
	measure(ctx, rep, wl, resolve, wl.resolve(order), resolveRoute, progress)
	if w == nil {
		return nil
	}
	// An agent is restored once every anomaly that holds it is resolved.
	restored := expectation{phase: "resolve", typ: "agent.restored", want: map[effectKey]bool{}, answered: map[string]time.Time{}}
	released := map[int]bool{}
	for k, i := range order {
		a := wl.agentOf(i)
		if _, seen := released[a]; !seen {
			released[a] = true
		}
		if resolve.ok[k] {
			restored.answered[wl.ids[i]] = resolve.done[k]
		} else {
			released[a] = false
		}
	}
	for a, ok := range released {
		if ok {
			restored.want[effectKey{restored.typ, wl.agents[a].String()}] = true
		}
	}
	fmt.Fprintf(progress, "effects: %d/%d agent.restored arrived, waiting up to %s for the rest\n",
		w.count(restored.want), len(restored.want), cfg.EffectWait)
	w.waitFor(ctx, restored.want, cfg.EffectWait)
	rep.Effects = []*EffectResult{w.matchEffects(suspended), w.matchEffects(restored)}
	dup, undecoded, dropped, err := w.health()
	rep.EffectsWatch = &EffectsWatch{Duplicates: dup, Undecoded: undecoded, Dropped: dropped}
	if err != nil {
		rep.EffectsWatch.Error = err.Error()
	}
	return nil
}

// prefill reports and resolves cfg.Prefill anomalies, unpaced and on agents of
// their own, before the measured phases: a running service's log is not empty,
// and the collector's marks and the store's indexes grow with what it holds,
// so a load on a fresh store flatters it. The two phases are in the report,
// named prefill-report and prefill-resolve. With the effects watched, it waits
// until the prefill's agents are restored (or --effect-wait passes without an
// effect), so that the measured effects do not queue behind the prefill's.
func prefill(ctx context.Context, cfg Config, rep *Report, tenants []tenantKey, w *watcher, progress io.Writer) error {
	wl, err := newWorkload(rep.Target, tenants, cfg.Prefill, cfg.agentsFor(cfg.Prefill), cfg.Clients, cfg.RequestTimeout)
	if err != nil {
		return err
	}
	defer wl.close()
	measure(ctx, rep, wl, newPhase("prefill-report", cfg.Prefill, cfg.Clients, 0), wl.report, reportRoute, progress)
	if ctx.Err() != nil {
		return nil
	}
	order := wl.reported()
	measure(ctx, rep, wl, newPhase("prefill-resolve", len(order), cfg.Clients, 0), wl.resolve(order), resolveRoute, progress)
	if w == nil || ctx.Err() != nil {
		return nil
	}
	restored := map[effectKey]bool{}
	for _, a := range wl.agents {
		restored[effectKey{"agent.restored", a.String()}] = true
	}
	fmt.Fprintf(progress, "effects: %d/%d agent.restored of the prefill arrived, waiting up to %s for the rest before the measured phases\n",
		w.count(restored), len(restored), cfg.EffectWait)
	w.waitFor(ctx, restored, cfg.EffectWait)
	return nil
}

// The routes whose handler time the server's /metrics gives for each phase.
const (
	reportRoute  = "POST /v1/anomalies"
	resolveRoute = "POST /v1/anomalies/{anomalyId}/resolve"
)

// measure runs phase p of the workload and adds its result to rep, with what
// the server's /metrics say it spent on route meanwhile: its CPU, its handler
// time and its kept and loaded states.
func measure(ctx context.Context, rep *Report, wl *workload, p *phase, fn op, route string, progress io.Writer) {
	before := scrapeServer(ctx, wl.metrics, wl.base)
	p.run(ctx, progress, fn)
	after := scrapeServer(context.WithoutCancel(ctx), wl.metrics, wl.base)
	r := p.result()
	serverDelta(r, before, after, route)
	rep.Phases = append(rep.Phases, r)
}
