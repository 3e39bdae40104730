package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anomalyd/anomalyd/projections"
	"github.com/nats-io/nats.go"
	// The load generator shares the machine with the server it measures: every
	// microsecond it spends per operation is taken from the server. Decoding the
	// effects is most of what it does per effect.
	"github.com/segmentio/encoding/json"
)

// effectKey names an effect by its type and agent. The benchmark's agents are
// new, so each is suspended once by its first report and restored once by the
// resolve that releases its last hold. Which command that was is in the
// effect's data.anomaly_id: the HTTP responses carry no event id to match
// data.cause_event_id with.
type effectKey struct {
	typ   string
	agent string
}

// arrival is when an effect arrived and the anomaly whose command caused it.
type arrival struct {
	at      time.Time
	anomaly string
}

// watcher records when each effect arrives on a core NATS subscription to
// maip.effects.>. A core subscriber gets an effect as the publisher sends it,
// at the same time as the effects stream stores it.
type watcher struct {
	nc  *nats.Conn
	sub *nats.Subscription

	received   atomic.Int64
	mu         sync.Mutex
	arrivals   map[effectKey]arrival
	duplicates int
	undecoded  int
	asyncErr   error
}

// watchEffects subscribes to every effect of the server at natsURL and
// returns once the server has registered the subscription.
func watchEffects(natsURL string) (*watcher, error) {
	w := &watcher{arrivals: map[effectKey]arrival{}}
	nc, err := nats.Connect(natsURL, nats.Name("anomalybench"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			w.mu.Lock()
			if w.asyncErr == nil {
				w.asyncErr = err
			}
			w.mu.Unlock()
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	w.nc = nc
	w.sub, err = nc.Subscribe("maip.effects.>", w.receive)
	if err == nil {
		// No effect may be dropped for being read slowly: the count is a result.
		err = w.sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to maip.effects.>: %w", err)
	}
	return w, nil
}

func (w *watcher) receive(m *nats.Msg) {
	at := time.Now()
	w.received.Add(1)
	var ce projections.CloudEvent
	err := json.Unmarshal(m.Data, &ce)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || ce.Data.AnomalyID == nil {
		w.undecoded++
		return
	}
	k := effectKey{ce.Type, ce.Data.AgentID.String()}
	if _, ok := w.arrivals[k]; ok {
		w.duplicates++
		return
	}
	w.arrivals[k] = arrival{at: at, anomaly: ce.Data.AnomalyID.String()}
}

// count returns how many arrivals match keys.
func (w *watcher) count(keys map[effectKey]bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k := range w.arrivals {
		if keys[k] {
			n++
		}
	}
	return n
}

// waitFor waits until every effect in want has arrived, until none has
// arrived for idle, or until ctx ends.
func (w *watcher) waitFor(ctx context.Context, want map[effectKey]bool, idle time.Duration) {
	last, lastChange := w.received.Load(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for w.count(want) < len(want) {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n := w.received.Load(); n != last {
				last, lastChange = n, now
			} else if now.Sub(lastChange) > idle {
				return
			}
		}
	}
}

func (w *watcher) close() {
	w.nc.Close()
}

// expectation is one kind of effect a phase must cause: on which agents, and
// when the command on each anomaly was answered.
type expectation struct {
	phase, typ string
	want       map[effectKey]bool   // the effects the log must call for
	answered   map[string]time.Time // anomaly id → time its 2xx was read
}

// matchEffects computes the delay of each expected effect: its arrival minus
// the completion of the response to the command that caused it. An effect
// can arrive a hair before the client has read that response; such delays
// count as zero and as early.
func (w *watcher) matchEffects(e expectation) *EffectResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := &EffectResult{Phase: e.phase, Type: e.typ, Expected: len(e.want)}
	delays := make([]time.Duration, 0, len(e.want))
	var first, last time.Time
	for k := range e.want {
		a, ok := w.arrivals[k]
		if !ok {
			continue
		}
		r.Seen++
		if first.IsZero() || a.at.Before(first) {
			first = a.at
		}
		if a.at.After(last) {
			last = a.at
		}
		answered, ok := e.answered[a.anomaly]
		if !ok {
			r.Unmatched++ // caused by a command whose response the client never got
			continue
		}
		d := a.at.Sub(answered)
		if d < 0 {
			r.Early++
			d = 0
		}
		delays = append(delays, d)
	}
	r.Delay = percentiles(delays)
	if span := last.Sub(first).Seconds(); r.Seen > 1 && span > 0 {
		r.Rate = float64(r.Seen-1) / span
	}
	return r
}

// health returns what may have cost the watcher effects: duplicates,
// undecodable messages and slow-consumer errors.
func (w *watcher) health() (duplicates, undecoded int, dropped int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, _ := w.sub.Dropped()
	return w.duplicates, w.undecoded, d, w.asyncErr
}
