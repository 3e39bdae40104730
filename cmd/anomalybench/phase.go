package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anomalyd/anomalyd/internal/cputime"
)

// op runs operation i of a phase and returns "" on success, else the kind of
// failure ("HTTP 409", "transport: timeout", ...) and a sample message.
type op func(ctx context.Context, i int) (kind, msg string)

// phase is one measured loop: n operations spread over a fixed number of
// workers. Every slot is preallocated, and operation i writes only slot i,
// so that recording costs no lock and no allocation.
type phase struct {
	name    string
	n       int
	workers int
	rate    float64 // operations per second, 0: unpaced

	latency []time.Duration // send → response read, per operation
	// late is, in a paced phase, how long after its due time each operation
	// was sent because every client was still busy: the wait that latency
	// alone leaves out (coordinated omission).
	late []time.Duration
	done []time.Time // completion time of each successful operation
	ok   []bool

	started  atomic.Int64 // operations handed out
	finished atomic.Int64 // operations completed, successfully or not
	failed   atomic.Int64

	mu      sync.Mutex
	errors  map[string]int
	samples map[string]string
	begin   time.Time
	end     time.Time
	cpu     time.Duration // this process's CPU time during the phase
}

func newPhase(name string, n, workers int, rate float64) *phase {
	return &phase{
		name: name, n: n, workers: min(workers, max(n, 1)), rate: rate,
		latency: make([]time.Duration, n), late: make([]time.Duration, n), done: make([]time.Time, n), ok: make([]bool, n),
		errors: map[string]int{}, samples: map[string]string{},
	}
}

// run runs the phase until every operation is done or ctx ends, printing
// progress to progress once a second. Operations that ctx cut short are not
// counted: they were not measured.
func (p *phase) run(ctx context.Context, progress io.Writer, fn op) {
	stopProgress := p.progress(progress)
	defer stopProgress()
	cpu := cputime.Process()
	p.begin = time.Now()
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(p.started.Add(1) - 1)
				if i >= p.n {
					return
				}
				due, ok := p.pace(ctx, i)
				if !ok {
					return
				}
				start := time.Now()
				if !due.IsZero() {
					p.late[i] = max(start.Sub(due), 0)
				}
				kind, msg := fn(ctx, i)
				end := time.Now()
				if kind != "" && ctx.Err() != nil {
					return // cut short by the deadline, not failed
				}
				p.latency[i] = end.Sub(start)
				if kind == "" {
					p.done[i], p.ok[i] = end, true
				} else {
					p.fail(kind, msg)
				}
				p.finished.Add(1)
			}
		}()
	}
	wg.Wait()
	p.end = time.Now()
	p.cpu = cputime.Process() - cpu
}

// pace waits until operation i is due at the phase's rate, and returns when
// it was due (zero when unpaced) and whether it may run.
func (p *phase) pace(ctx context.Context, i int) (time.Time, bool) {
	if p.rate <= 0 {
		return time.Time{}, true
	}
	due := p.begin.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return due, true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return due, true
	case <-ctx.Done():
		return due, false
	}
}

func (p *phase) fail(kind, msg string) {
	p.failed.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors[kind]++
	if _, ok := p.samples[kind]; !ok {
		p.samples[kind] = msg
	}
}

// progress prints a line a second until the returned function is called,
// which prints the last one.
func (p *phase) progress(w io.Writer) func() {
	stop, stopped := make(chan struct{}), make(chan struct{})
	line := func(rate float64) {
		fmt.Fprintf(w, "%s: %d/%d done, %.0f/s, %d errors\n", p.name, p.finished.Load(), p.n, rate, p.failed.Load())
	}
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				n := p.finished.Load()
				line(float64(n-last) / now.Sub(lastAt).Seconds())
				last, lastAt = n, now
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		line(p.result().Throughput)
	}
}

// result summarises the phase: throughput counts successful operations only,
// and the latency percentiles are those of the successful operations.
func (p *phase) result() *PhaseResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &PhaseResult{Name: p.name, Planned: p.n, Errors: map[string]int{}, ErrorSamples: map[string]string{}}
	samples := make([]time.Duration, 0, p.n)
	var scheduled []time.Duration
	for i := range p.n {
		if !p.ok[i] {
			continue
		}
		samples = append(samples, p.latency[i])
		if p.rate > 0 {
			scheduled = append(scheduled, p.late[i]+p.latency[i])
			if p.late[i] > lateStart {
				r.LateStarts++
			}
		}
	}
	if p.rate > 0 {
		l := percentiles(scheduled)
		r.FromSchedule = &l
	}
	r.Count = int(p.finished.Load())
	r.OK = len(samples)
	for k, v := range p.errors {
		r.Errors[k] = v
		r.ErrorSamples[k] = p.samples[k]
	}
	end := p.end
	if end.IsZero() {
		end = time.Now()
	}
	r.Seconds = end.Sub(p.begin).Seconds()
	if r.Seconds > 0 {
		r.Throughput = float64(r.OK) / r.Seconds
	}
	r.Latency = percentiles(samples)
	r.BenchCPUSeconds = p.cpu.Seconds()
	return r
}

// lateStart is how far past its due time a paced operation must start to
// count as late: more than a timer's wake-up normally takes.
const lateStart = time.Millisecond

// percentiles sorts samples and returns the nearest-rank p50, p90, p99 and
// the maximum, in milliseconds; all zero without samples.
func percentiles(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		return ms(samples[max(i, 0)])
	}
	return Latency{
		P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(samples[len(samples)-1]),
		Mean: ms(sum / time.Duration(len(samples))), Samples: len(samples),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
