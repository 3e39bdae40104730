package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of one run, as the table and --json show it.
type Report struct {
	Target     string  `json:"target"`
	Server     string  `json:"server"` // "started" or "external"
	Tenants    int     `json:"tenants"`
	Agents     int     `json:"agents"`
	Anomalies  int     `json:"anomalies"`
	Prefill    int     `json:"prefill,omitempty"` // anomalies reported and resolved before the measured phases
	Clients    int     `json:"clients"`
	Rate       float64 `json:"rate"` // resolves per second asked for, 0: unpaced
	NumCPU     int     `json:"num_cpu"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	// ClientProcs is GOMAXPROCS during the HTTP phases, GOMAXPROCS the one of
	// the raw and in-process phases.
	ClientProcs int `json:"client_procs"`

	Phases  []*PhaseResult  `json:"phases"`
	Effects []*EffectResult `json:"effects"`
	Ratios  *Ratios         `json:"ratios,omitempty"`
	Restart *Restart        `json:"restart,omitempty"`

	// EffectsWatch says what may have cost the subscription effects.
	EffectsWatch *EffectsWatch `json:"effects_watch,omitempty"`
	ServerLog    *ServerLog    `json:"server_log,omitempty"`
	// Problems say why a run did not measure what it set out to: cut short,
	// interrupted, or a server that did not stop cleanly.
	Problems []string `json:"problems,omitempty"`
	// Notes say what a run left out on purpose, such as the effects.
	Notes []string `json:"notes,omitempty"`
}

// Restart is the start-up of anomalyd on the log a load left (--restart).
type Restart struct {
	// StopSeconds is how long the loaded server took to stop after SIGTERM,
	// the write of its read models' snapshot included.
	StopSeconds float64 `json:"stop_seconds"`
	// Events is the position of the log's last event when the read model
	// had caught up: the number of events replayed, the store's positions
	// being contiguous on JetStream.
	Events uint64 `json:"events"`
	// ListeningSeconds runs from the start of the process until it listens,
	// which it does once its read model has replayed the log.
	ListeningSeconds float64 `json:"listening_seconds"`
	// ReplaySeconds is the server's own measure of that replay.
	ReplaySeconds float64 `json:"replay_seconds"`
	// SnapshotPosition is the position of the snapshot of the read models
	// that the server read before it replayed the events after it (0: it
	// replayed the whole log), and SnapshotSeconds the time that read took.
	SnapshotPosition uint64  `json:"snapshot_position"`
	SnapshotSeconds  float64 `json:"snapshot_seconds"`
	// ReadySeconds runs until GET /readyz answered 200: the effects
	// publisher has folded the log too. Zero when it never did.
	ReadySeconds float64 `json:"ready_seconds"`
}

// PhaseResult is one measured loop. Count is the operations completed, OK
// those that succeeded; throughput and latency are of the successful ones.
type PhaseResult struct {
	Name         string            `json:"name"`
	Planned      int               `json:"planned"`
	Count        int               `json:"count"`
	OK           int               `json:"ok"`
	Errors       map[string]int    `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Seconds      float64           `json:"seconds"`
	Throughput   float64           `json:"throughput"`
	Latency      Latency           `json:"latency_ms"`
	// FromSchedule, for a paced phase, measures each operation from when it
	// was due instead of when it was sent, so that the time a request waited
	// for a free client counts too; LateStarts counts the operations sent
	// more than a millisecond after they were due.
	FromSchedule *Latency `json:"latency_from_schedule_ms,omitempty"`
	LateStarts   int      `json:"late_starts,omitempty"`
	// BenchCPUSeconds is the CPU time of this process during the phase: the
	// clients, and for the raw phases the embedded NATS server too.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	// ServerCPUSeconds and ServerMeanMS come from anomalyd's /metrics: its CPU
	// time during the phase, and the mean time its handler took per request.
	ServerCPUSeconds *float64 `json:"server_cpu_seconds,omitempty"`
	ServerMeanMS     *float64 `json:"server_mean_ms,omitempty"`
	// ServerKept and ServerLoads, also from /metrics, count the commands the
	// server decided on an anomaly state it kept and the anomalies it read
	// from the store (and checked) for a command during the phase.
	ServerKept  *float64 `json:"server_commands_on_kept_state,omitempty"`
	ServerLoads *float64 `json:"server_anomaly_loads,omitempty"`
}

// Latency holds nearest-rank percentiles of sorted samples, in milliseconds.
type Latency struct {
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Samples int     `json:"samples"`
}

// EffectResult is the delay from a command's response to the effect it
// caused arriving at a subscriber.
type EffectResult struct {
	Phase     string  `json:"phase"`
	Type      string  `json:"type"`
	Expected  int     `json:"expected"`
	Seen      int     `json:"seen"`
	Early     int     `json:"early"`               // arrived before the response was read; counted as 0 ms
	Unmatched int     `json:"unmatched,omitempty"` // caused by a command whose response failed
	Delay     Latency `json:"delay_ms"`
	// Rate is effects per second from the first arrival to the last: while
	// effects queue up, the pace of the effects publisher.
	Rate float64 `json:"rate"`
}

// EffectsWatch is the health of the effects subscription.
type EffectsWatch struct {
	Duplicates int    `json:"duplicates"`
	Undecoded  int    `json:"undecoded"`
	Dropped    int    `json:"dropped"`
	Error      string `json:"error,omitempty"`
}

// Ratios compare the HTTP resolve throughput with the raw JetStream ceilings.
type Ratios struct {
	ResolveOverRawPublish   float64 `json:"resolve_over_raw_publish"`
	ResolveOverRawReadWrite float64 `json:"resolve_over_raw_read_write"`
	// The command service in process, without HTTP, on the same server as
	// the raw phases: a report is one expected-sequence publish, a resolve a
	// read and one.
	InProcessReportOverRawPublish    float64 `json:"in_process_report_over_raw_publish"`
	InProcessResolveOverRawPublish   float64 `json:"in_process_resolve_over_raw_publish"`
	InProcessResolveOverRawReadWrite float64 `json:"in_process_resolve_over_raw_read_write"`
}

// ServerLog counts the warnings and errors of a started anomalyd.
type ServerLog struct {
	Warnings int      `json:"warnings"`
	Errors   int      `json:"errors"`
	Last     []string `json:"last,omitempty"`
}

// Phase returns the phase called name, nil if it did not run.
func (r *Report) Phase(name string) *PhaseResult {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Clean reports whether the run measured what it set out to: every phase ran
// to its count without an error, and every expected effect arrived.
func (r *Report) Clean() bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, p := range r.Phases {
		if p.Count != p.Planned || p.OK != p.Count {
			return false
		}
	}
	for _, e := range r.Effects {
		if e.Seen != e.Expected {
			return false
		}
	}
	return true
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as tables.
func (r *Report) WriteText(w io.Writer) error {
	rate := "unpaced"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g resolves/s", r.Rate)
	}
	prefilled := ""
	if r.Prefill > 0 {
		prefilled = fmt.Sprintf(" after a prefill of %d", r.Prefill)
	}
	fmt.Fprintf(w, "anomalybench: %s anomalyd at %s; %d anomalies%s, %d agents, %d tenants, %d clients, resolves %s; %d CPUs; GOMAXPROCS %d for the HTTP clients, %d in process\n\n",
		r.Server, r.Target, r.Anomalies, prefilled, r.Agents, r.Tenants, r.Clients, rate, r.NumCPU, r.ClientProcs, r.GOMAXPROCS)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tcount\tok\terrors\tduration s\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", p.Name, p.Count, p.OK, p.Count-p.OK,
			p.Seconds, p.Throughput, p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range r.Phases {
		if s := p.FromSchedule; s != nil {
			fmt.Fprintf(w, "  %s from each request's due time: p50 %.2f, p90 %.2f, p99 %.2f, max %.2f ms; %d of %d sent over 1 ms late\n",
				p.Name, s.P50, s.P90, s.P99, s.Max, p.LateStarts, p.OK)
		}
		for _, kind := range slices.Sorted(maps.Keys(p.Errors)) {
			fmt.Fprintf(w, "  %s errors: %d × %s, e.g. %.200s\n", p.Name, p.Errors[kind], kind, strings.TrimSpace(p.ErrorSamples[kind]))
		}
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "where the time goes\tmean ms\tserver mean ms\tserver CPU s\tbench CPU s\tCPU µs/op\tcores busy\tkept/loaded\t")
	for _, p := range r.Phases {
		serverMean, serverCPU, cpu, state := "-", "-", p.BenchCPUSeconds, "-"
		if p.ServerKept != nil && p.ServerLoads != nil {
			state = fmt.Sprintf("%.0f/%.0f", *p.ServerKept, *p.ServerLoads)
		}
		if p.ServerMeanMS != nil {
			serverMean = fmt.Sprintf("%.2f", *p.ServerMeanMS)
		}
		if p.ServerCPUSeconds != nil {
			serverCPU = fmt.Sprintf("%.2f", *p.ServerCPUSeconds)
			cpu += *p.ServerCPUSeconds
		}
		perOp, busy := 0.0, 0.0
		if p.OK > 0 {
			perOp = cpu / float64(p.OK) * 1e6
		}
		if p.Seconds > 0 {
			busy = cpu / p.Seconds
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t\n", p.Name, p.Latency.Mean, serverMean, serverCPU, p.BenchCPUSeconds, perOp, busy, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(r.Effects) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "effect delay\tcaused by\tseen/expected\tearly\tp50 ms\tp90 ms\tp99 ms\tmax ms\teffects/s\t")
		for _, e := range r.Effects {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t\n", e.Type, e.Phase, e.Seen, e.Expected, e.Early,
				e.Delay.P50, e.Delay.P90, e.Delay.P99, e.Delay.Max, e.Rate)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if ew := r.EffectsWatch; ew != nil && (ew.Duplicates+ew.Undecoded+ew.Dropped > 0 || ew.Error != "") {
			fmt.Fprintf(w, "  subscription: %d duplicates, %d undecoded, %d dropped %s\n", ew.Duplicates, ew.Undecoded, ew.Dropped, ew.Error)
		}
	}
	if r.Ratios != nil {
		fmt.Fprintf(w, "\nresolve throughput / raw publish rate:         %.3f\n", r.Ratios.ResolveOverRawPublish)
		fmt.Fprintf(w, "resolve throughput / raw read-then-write rate: %.3f\n", r.Ratios.ResolveOverRawReadWrite)
		if r.Ratios.InProcessResolveOverRawPublish > 0 {
			fmt.Fprintf(w, "in-process report / raw publish rate:          %.3f\n", r.Ratios.InProcessReportOverRawPublish)
			fmt.Fprintf(w, "in-process resolve / raw publish rate:         %.3f\n", r.Ratios.InProcessResolveOverRawPublish)
			fmt.Fprintf(w, "in-process resolve / raw read-then-write rate: %.3f\n", r.Ratios.InProcessResolveOverRawReadWrite)
		}
	}
	if rs := r.Restart; rs != nil {
		replayed := rs.Events - min(rs.SnapshotPosition, rs.Events)
		rate := 0.0
		if rs.ReplaySeconds > 0 {
			rate = float64(replayed) / rs.ReplaySeconds
		}
		snapshot := "no snapshot"
		if rs.SnapshotPosition > 0 {
			snapshot = fmt.Sprintf("snapshot at position %d read in %.2f s", rs.SnapshotPosition, rs.SnapshotSeconds)
		}
		fmt.Fprintf(w, "\nrestart on %d events: the loaded server stopped in %.2f s; listening after %.2f s (%s; read model replay of %d events %.2f s, %.0f events/s), ready after %.2f s\n",
			rs.Events, rs.StopSeconds, rs.ListeningSeconds, snapshot, replayed, rs.ReplaySeconds, rate, rs.ReadySeconds)
	}
	if l := r.ServerLog; l != nil && (l.Warnings > 0 || l.Errors > 0) {
		fmt.Fprintf(w, "\nanomalyd logged %d warnings and %d errors; the last:\n", l.Warnings, l.Errors)
		for _, line := range l.Last {
			fmt.Fprintf(w, "  %.300s\n", line)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, n := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", n)
	}
	return nil
}
