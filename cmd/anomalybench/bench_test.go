package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRunCountsEveryCommandAndEffect runs the tool against the real anomalyd
// binary with small numbers and checks that the report accounts for every
// command and every effect, once with an agent per anomaly and once with
// several anomalies holding each agent, where only the resolve that releases
// an agent's last hold restores it; and that a prefill's commands are in the
// log and in the report, beside the measured phases and not in them.
func TestRunCountsEveryCommandAndEffect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anomalyd binary")
	}
	bin := filepath.Join(t.TempDir(), "anomalyd")
	if out, err := exec.Command("go", "build", "-o", bin, "../anomalyd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name           string
		agents         int
		rate           float64
		expectedAgents int
		restart        bool
		snapshot       bool // the server keeps its read models at shutdown (the default)
		prefill        int
	}{
		{"OneEffectPerCommandWithAnAgentPerAnomaly", 0, 0, 200, true, true, 0},
		{"OneEffectPerAgentWhenAnomaliesShareAgents", 50, 1000, 50, false, true, 0},
		{"RestartReplaysTheWholeLogWithSnapshotsOff", 0, 0, 200, true, false, 0},
		{"PrefillRunsBeforeTheMeasuredPhases", 0, 0, 200, true, true, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.snapshot {
				t.Setenv("ANOMALYD_SNAPSHOT_FILE", "off") // the started server inherits it
			}
			cfg := defaultConfig()
			cfg.Anomalyd, cfg.Anomalies, cfg.Agents, cfg.Clients, cfg.Tenants, cfg.Rate = bin, 200, tc.agents, 8, 2, tc.rate
			cfg.MaxDuration, cfg.EffectWait = 2*time.Minute, 20*time.Second
			cfg.Restart, cfg.DataDir, cfg.Prefill = tc.restart, filepath.Join(t.TempDir(), "kept"), tc.prefill
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			cfg.ClientProcs = 1
			procs := runtime.GOMAXPROCS(0)
			var progress bytes.Buffer
			rep, err := Run(context.Background(), cfg, &progress)
			if err != nil {
				t.Fatalf("%v\nprogress:\n%s", err, progress.String())
			}
			if got := runtime.GOMAXPROCS(0); got != procs || rep.ClientProcs != 1 || rep.GOMAXPROCS != procs {
				t.Errorf("GOMAXPROCS %d after the run (report: clients %d, in process %d), want %d restored", got, rep.ClientProcs, rep.GOMAXPROCS, procs)
			}
			var text bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", text.String())

			if len(rep.Problems) > 0 || len(rep.Notes) > 0 {
				t.Errorf("problems: %v, notes: %v", rep.Problems, rep.Notes)
			}
			for _, name := range []string{"report", "resolve", "raw-publish", "raw-read-write", "in-process-report", "in-process-resolve"} {
				p := rep.Phase(name)
				if p == nil {
					t.Errorf("no %s phase in the report", name)
					continue
				}
				if p.Planned != 200 || p.Count != 200 || p.OK != 200 || len(p.Errors) != 0 {
					t.Errorf("%s: planned %d, count %d, ok %d, errors %v; want 200, 200, 200 and none",
						name, p.Planned, p.Count, p.OK, p.Errors)
				}
				checkOrdered(t, name+" latency", p.Latency, 200)
				if p.Throughput <= 0 {
					t.Errorf("%s: throughput %v", name, p.Throughput)
				}
				// Only the paced resolves are measured from their schedule too,
				// and waiting can only add to each request's time.
				switch s := p.FromSchedule; {
				case (name == "resolve" && tc.rate > 0) != (s != nil):
					t.Errorf("%s at rate %v: latency from schedule %+v", name, tc.rate, s)
				case s != nil:
					checkOrdered(t, name+" latency from schedule", *s, 200)
					if s.P50 < p.Latency.P50 || s.P99 < p.Latency.P99 || s.Max < p.Latency.Max {
						t.Errorf("%s: from schedule %+v is below from send %+v", name, *s, p.Latency)
					}
				}
			}
			for _, name := range []string{"prefill-report", "prefill-resolve"} {
				p := rep.Phase(name)
				switch {
				case tc.prefill == 0 && p != nil:
					t.Errorf("%s phase without --prefill: %+v", name, p)
				case tc.prefill > 0 && (p == nil || p.Planned != tc.prefill || p.OK != tc.prefill):
					t.Errorf("%s phase: %+v, want %d done", name, p, tc.prefill)
				}
			}
			if rep.Prefill != tc.prefill {
				t.Errorf("report's prefill %d, want %d", rep.Prefill, tc.prefill)
			}
			// Every resolve finds the state the server kept from the report.
			if p := rep.Phase("resolve"); p == nil || p.ServerKept == nil || *p.ServerKept != 200 || p.ServerLoads == nil || *p.ServerLoads != 0 {
				t.Errorf("resolve phase: commands on a kept state %v, anomalies loaded %v; want 200 and 0", deref(p.ServerKept), deref(p.ServerLoads))
			}
			if len(rep.Effects) != 2 {
				t.Fatalf("effects: %d results, want 2", len(rep.Effects))
			}
			for _, e := range rep.Effects {
				if e.Expected != tc.expectedAgents || e.Seen != e.Expected || e.Unmatched != 0 {
					t.Errorf("%s: seen %d of %d expected (%d unmatched); want all %d",
						e.Type, e.Seen, e.Expected, e.Unmatched, tc.expectedAgents)
				}
				checkOrdered(t, e.Type+" delay", e.Delay, tc.expectedAgents)
			}
			if w := rep.EffectsWatch; w == nil || w.Duplicates != 0 || w.Dropped != 0 || w.Undecoded != 0 || w.Error != "" {
				t.Errorf("effects subscription: %+v", w)
			}
			if r := rep.Ratios; r == nil || r.ResolveOverRawPublish <= 0 || r.ResolveOverRawReadWrite <= 0 ||
				r.InProcessReportOverRawPublish <= 0 || r.InProcessResolveOverRawPublish <= 0 || r.InProcessResolveOverRawReadWrite <= 0 {
				t.Errorf("ratios: %+v", rep.Ratios)
			}
			if !rep.Clean() {
				t.Error("the report is not clean")
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
				t.Errorf("the data directory was not kept: %v", err)
			}
			switch r := rep.Restart; {
			case !tc.restart && r != nil:
				t.Errorf("restart measured without --restart: %+v", r)
			case tc.restart && r == nil:
				t.Error("no restart measured with --restart")
			case tc.restart && (r.Events != uint64(2*(200+tc.prefill)) || r.StopSeconds <= 0 || r.ListeningSeconds <= 0 ||
				r.SnapshotSeconds+r.ReplaySeconds > r.ListeningSeconds || r.ReadySeconds < r.ListeningSeconds):
				// A report and a resolve for each anomaly, the prefill's too,
				// read before listening, ready after.
				t.Errorf("restart: %+v", r)
			case tc.restart && tc.snapshot && (r.SnapshotPosition != r.Events || r.SnapshotSeconds <= 0):
				// The first run stopped cleanly: its snapshot holds the whole log.
				t.Errorf("restart from the snapshot: %+v", r)
			case tc.restart && !tc.snapshot && (r.SnapshotPosition != 0 || r.ReplaySeconds <= 0):
				t.Errorf("restart with snapshots off: %+v", r)
			}
			if !strings.Contains(progress.String(), "resolve: 200/200 done") {
				t.Errorf("no final resolve progress line in:\n%s", progress.String())
			}

			var back Report
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Phase("resolve") == nil || back.Phase("resolve").OK != 200 {
				t.Errorf("JSON report does not read back: %v\n%s", err, js.String())
			}
		})
	}
}

func TestPacedPhaseCountsTheWaitForAFreeClient(t *testing.T) {
	// Two clients, each request 5 ms, due 1,000 a second: at most 400 a
	// second can start on time, so most wait for a client past their due time.
	p := newPhase("paced", 50, 2, 1000)
	p.run(t.Context(), io.Discard, func(ctx context.Context, i int) (string, string) {
		time.Sleep(5 * time.Millisecond)
		return "", ""
	})
	r := p.result()
	if r.OK != 50 || r.FromSchedule == nil {
		t.Fatalf("ok %d, from schedule %+v; want 50 and percentiles", r.OK, r.FromSchedule)
	}
	if r.LateStarts < 25 || r.FromSchedule.Max < r.Latency.Max+10 {
		t.Errorf("%d late starts, max %.1f ms from schedule against %.1f ms from send; want most late, and the wait counted",
			r.LateStarts, r.FromSchedule.Max, r.Latency.Max)
	}

	unpaced := newPhase("unpaced", 10, 2, 0)
	unpaced.run(t.Context(), io.Discard, func(context.Context, int) (string, string) { return "", "" })
	if r := unpaced.result(); r.FromSchedule != nil || r.LateStarts != 0 {
		t.Errorf("unpaced phase: from schedule %+v, %d late", r.FromSchedule, r.LateStarts)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func checkOrdered(t *testing.T, what string, l Latency, samples int) {
	t.Helper()
	if l.Samples != samples {
		t.Errorf("%s: %d samples, want %d", what, l.Samples, samples)
	}
	if !(0 <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", what, l)
	}
}

func TestPercentilesAreNearestRank(t *testing.T) {
	samples := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(samples)
	want := Latency{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5, Samples: 100}
	if got != want {
		t.Errorf("percentiles of 1..100 ms = %+v, want %+v", got, want)
	}
	if got := percentiles(nil); got != (Latency{}) {
		t.Errorf("percentiles of nothing = %+v, want zeros", got)
	}
}

func TestParseFlagsRefusesContradictions(t *testing.T) {
	for _, args := range [][]string{
		{"--key", "k"},
		{"--target", "http://127.0.0.1:1"},
		{"--target", "127.0.0.1:8080", "--key", "k", "--tenant", "t"},
		{"--target", "http://127.0.0.1:1", "--key", "k", "--tenant", "t", "--anomalyd", "/bin/true"},
		{"--anomalies", "0"},
		{"--prefill", "-1"},
		{"--rate", "-1"},
		{"--clients", "0"},
		{"--client-procs", "0"},
		{"--target", "http://127.0.0.1:1", "--key", "k", "--tenant", "t", "--restart"},
		{"--target", "http://127.0.0.1:1", "--key", "k", "--tenant", "t", "--data-dir", "/nonexistent-anomalybench"},
		{"--data-dir", "."},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) = nil error", args)
		}
	}
	c, err := parseFlags([]string{"--target", "http://127.0.0.1:1", "--key", "k", "--tenant", "t", "--tenants", "4"}, &bytes.Buffer{})
	if err != nil || c.Tenants != 1 {
		t.Errorf("with --target: tenants %d, err %v; want 1 tenant", c.Tenants, err)
	}
}
