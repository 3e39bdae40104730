package projections

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// effectNamespace derives an effect's id from the id of the event that caused it,
// so that a re-publish after a crash carries the same id and is dropped.
var effectNamespace = uuid.MustParse("6f1d6c55-2b1e-4c55-9d67-8b0c2a4a7e11")

// EffectID returns the id of the effect caused by the event with id eventID.
func EffectID(eventID uuid.UUID) uuid.UUID { return uuid.NewSHA1(effectNamespace, eventID[:]) }

// EffectSubject returns the NATS subject of an agent's effects.
func EffectSubject(tenant string, agent uuid.UUID) string {
	return "maip.effects." + tenant + ".agent." + agent.String()
}

// Effect is one message for agent-control subscribers.
type Effect struct {
	ID            uuid.UUID
	Subject       string
	CausePosition uint64 // store position of the causing event
	Body          []byte // a CloudEvents 1.0 JSON document
}

// EffectSink stores effects where subscribers read them, in the order sent.
type EffectSink interface {
	// Send starts storing e as the effect that directly follows the stored
	// effect at sequence after (0: e is the first), and returns without
	// waiting. The sink calls done exactly once, from any goroutine: with nil
	// once e is stored, or with the reason it is not, which includes the
	// stored effects having moved past after. So an effect that fails keeps
	// every effect sent after it out, and what is stored stays a prefix of
	// what was sent. A second store of the same effect id is dropped.
	Send(ctx context.Context, e Effect, after uint64, done func(error))
	// Last returns the sequence of the last stored effect and its
	// CausePosition, zeros when none is stored.
	Last(ctx context.Context) (seq, cause uint64, err error)
}

// CloudEvent is the envelope of an effect, CloudEvents 1.0 in JSON.
type CloudEvent struct {
	SpecVersion     string     `json:"specversion"`
	ID              string     `json:"id"`
	Source          string     `json:"source"`
	Type            string     `json:"type"`
	Subject         string     `json:"subject"`
	Time            time.Time  `json:"time"`
	DataContentType string     `json:"datacontenttype"`
	Data            EffectData `json:"data"`
}

// EffectData is what an effect says: which agent moved from which status to
// which, and the anomaly, resolution and event that caused it.
type EffectData struct {
	TenantID       string     `json:"tenant_id"`
	AgentID        uuid.UUID  `json:"agent_id"`
	PreviousStatus string     `json:"previous_status"`
	Status         string     `json:"status"`
	AnomalyID      *uuid.UUID `json:"anomaly_id"`
	Resolution     *string    `json:"resolution"`
	CauseEventID   uuid.UUID  `json:"cause_event_id"`
	CauseEventType string     `json:"cause_event_type"`
}

// EffectType returns the CloudEvents type announcing that an agent is now in
// containment c: agent.restored when nothing contains it any more.
func EffectType(c domain.Containment) string {
	if c == domain.ContainmentNone {
		return "agent.restored"
	}
	return "agent." + c.String()
}

type agentKey struct {
	tenant string
	agent  uuid.UUID
}

// Effects folds every agent's containment from the log and publishes an effect
// for each change of an agent's effective status, and only then.
//
// The effects a log causes form one sequence, the same for every run, and the
// sink holds a prefix of it: each effect is sent as the direct successor of the
// one before (EffectSink.Send), with up to Window of them unacknowledged, so
// one that fails keeps the later ones out. The last stored effect is therefore
// the checkpoint: events at or before its cause were published by an earlier
// run (or by another instance) and are folded but not published again. A
// failed send is retried from the sink's last stored effect, with backoff, in
// the background; Apply waits only when MaxPending effects wait in its queue.
type Effects struct {
	sink   EffectSink
	logger *slog.Logger
	agents agentFold
	loaded bool
	queue  chan Effect // from Apply to the publisher, in order
	notify func(pos uint64)
	// ackTimeout bounds the wait for one acknowledgement (defaultAckTimeout).
	ackTimeout time.Duration

	mu     sync.Mutex
	resume uint64 // cause of the last effect known stored; later effects only are published
	folded uint64 // the last event Apply folded
	// pending holds the causes of the effects queued or sent and not yet
	// acknowledged, oldest first: the settled position is just before the
	// first of them, or the last folded event when there is none.
	pending []uint64
	idle    chan struct{} // closed and replaced when pending empties, if anyone waits
}

// Publishing limits of Effects.
const (
	// Window is how many effects are sent and not yet acknowledged at most.
	Window = 256
	// MaxPending is the capacity of the publisher's queue: Apply waits once
	// that many effects wait in it (the publisher holds as many more, sent or
	// about to be).
	MaxPending = 4096
	// defaultAckTimeout bounds the wait for one acknowledgement; past it the
	// send counts as failed and is retried from the last stored effect.
	defaultAckTimeout = 10 * time.Second
)

// NewEffects returns an effects publisher that publishes to sink.
func NewEffects(sink EffectSink, logger *slog.Logger) *Effects {
	return &Effects{
		sink: sink, logger: logger, agents: make(agentFold),
		queue: make(chan Effect, MaxPending), notify: func(uint64) {}, ackTimeout: defaultAckTimeout,
	}
}

// OnSettled implements Settler: fn learns the position up to which every
// event's effect is stored.
func (p *Effects) OnSettled(fn func(pos uint64)) { p.notify = fn }

// Apply folds one event and queues the effect it causes, if any, for the
// publisher, which the first call starts and which runs until ctx ends. It
// waits while MaxPending effects wait in its queue, and returns ctx's error if
// ctx ends first, an INTERNAL_ERROR *domain.Error for an event that does not
// fold, and the sink's error when the last stored effect cannot be read at the
// start.
func (p *Effects) Apply(ctx context.Context, r eventstore.Recorded) error {
	agent, before, after, err := p.agents.apply(r, 0) // never cut
	if err != nil {
		return err
	}
	return p.publishChange(ctx, r, agent, before, after)
}

// publishChange queues the effect of r, which moved agent from status before
// to after, unless the two are equal or the effect is stored already; it
// starts the publisher on the first call. See Apply.
func (p *Effects) publishChange(ctx context.Context, r eventstore.Recorded, agent uuid.UUID, before, after domain.Containment) error {
	if !p.loaded {
		seq, last, err := p.sink.Last(ctx)
		if err != nil {
			return fmt.Errorf("effects: find last published effect: %w", err)
		}
		p.resume, p.loaded = last, true
		go p.publish(ctx, seq)
	}
	var e Effect
	if before != after && !p.stored(r.Position) {
		var err error
		if e, err = newEffect(r, agent, before, after); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.folded = r.Position
	if e.ID != uuid.Nil {
		p.pending = append(p.pending, r.Position)
	}
	settled := p.settledLocked()
	p.mu.Unlock()
	if e.ID == uuid.Nil {
		p.notify(settled)
		return nil
	}
	select {
	case p.queue <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// full reports whether the queue of effects is full: the next effect would
// make Apply wait.
func (p *Effects) full() bool { return len(p.queue) == cap(p.queue) }

// settledLocked returns the position up to which every event's effect is
// stored. p.mu is held.
func (p *Effects) settledLocked() uint64 {
	if len(p.pending) == 0 {
		return p.folded
	}
	return p.pending[0] - 1
}

// startAfter records that every effect of the events up to pos is stored,
// and reports that position settled.
func (p *Effects) startAfter(pos uint64) {
	p.mu.Lock()
	p.folded = max(p.folded, pos)
	settled := p.settledLocked()
	p.mu.Unlock()
	p.notify(settled)
}

// Flush waits until every effect of the events applied so far is stored, or
// ctx ends (it then returns ctx's error).
func (p *Effects) Flush(ctx context.Context) error {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markStored records that the sink holds every effect up to cause: they leave
// pending, and the settled position moves.
func (p *Effects) markStored(cause uint64) {
	p.mu.Lock()
	p.resume = max(p.resume, cause)
	n := 0
	for n < len(p.pending) && p.pending[n] <= cause {
		n++
	}
	p.pending = p.pending[n:]
	if len(p.pending) == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	settled := p.settledLocked()
	p.mu.Unlock()
	p.notify(settled)
}

// sent is an effect sent to the sink, and where its answer arrives.
type sent struct {
	e    Effect
	done chan error
}

// publish sends the queued effects in order, each as the successor of the
// previous one, starting after the stored effect at sequence after, with up
// to Window unacknowledged. When one fails it waits out the others in flight,
// rereads the sink's last stored effect, and sends again from there.
func (p *Effects) publish(ctx context.Context, after uint64) {
	var (
		waiting  []Effect // taken from the queue, not yet sent
		inflight []sent   // sent, oldest first
		timed    chan error
		backoff  = 50 * time.Millisecond
	)
	timer := time.NewTimer(p.ackTimeout)
	timer.Stop()
	defer timer.Stop()
	for {
		for len(waiting) > 0 && len(inflight) < Window {
			s := sent{e: waiting[0], done: make(chan error, 1)}
			p.sink.Send(ctx, s.e, after, func(err error) { s.done <- err })
			inflight = append(inflight, s)
			waiting = waiting[1:]
			after++
		}
		var oldest chan error
		var timeout <-chan time.Time
		if len(inflight) > 0 {
			oldest, timeout = inflight[0].done, timer.C
			if oldest != timed { // the acknowledgement timeout runs from its send on
				timer.Reset(p.ackTimeout)
				timed = oldest
			}
		}
		queue := p.queue
		if len(waiting)+len(inflight) >= cap(p.queue) {
			queue = nil
		}
		var err error
		select {
		case <-ctx.Done():
			return
		case e := <-queue:
			if !p.published(e) {
				waiting = append(waiting, e)
			}
			continue
		case err = <-oldest:
		case <-timeout:
			err = fmt.Errorf("no acknowledgement within %s", p.ackTimeout)
		}
		if err == nil {
			p.markStored(inflight[0].e.CausePosition)
			inflight = inflight[1:]
			backoff = 50 * time.Millisecond
			continue
		}
		p.logger.Warn("effects: publish failed; sending again from the last stored effect",
			"effect", inflight[0].e.ID, "cause_position", inflight[0].e.CausePosition,
			"in_flight", len(inflight), "retry_in", backoff, "err", err)
		if !awaitAll(ctx, inflight[1:], p.ackTimeout) {
			return
		}
		for i := len(inflight) - 1; i >= 0; i-- {
			waiting = slices.Insert(waiting, 0, inflight[i].e)
		}
		inflight = nil
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			seq, cause, err := p.sink.Last(ctx)
			if err == nil {
				after = seq
				p.markStored(cause)
				waiting = slices.DeleteFunc(waiting, p.published)
				break
			}
			p.logger.Warn("effects: cannot read the last stored effect", "retry_in", backoff, "err", err)
		}
	}
}

// published reports whether e is known stored.
func (p *Effects) published(e Effect) bool { return p.stored(e.CausePosition) }

// stored reports whether the effect of the event at pos, if it has one, is
// known stored: pos is at or before the cause of the last effect the sink was
// seen to hold.
func (p *Effects) stored(pos uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pos <= p.resume
}

// awaitAll waits until every send in inflight is answered, or timeout has
// passed; false when ctx ends first. After a failed send the later ones fail
// too or are stored; either way the sink's last stored effect then tells.
func awaitAll(ctx context.Context, inflight []sent, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, s := range inflight {
		select {
		case <-s.done:
		case <-deadline.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func newEffect(r eventstore.Recorded, agent uuid.UUID, before, after domain.Containment) (Effect, error) {
	data := EffectData{
		TenantID: r.TenantID, AgentID: agent,
		PreviousStatus: domain.AgentStatus(before), Status: domain.AgentStatus(after),
		CauseEventID: r.ID, CauseEventType: r.Type,
	}
	if r.Stream.Category == domain.CategoryAnomaly {
		if id, err := uuid.Parse(r.Stream.ID); err == nil {
			data.AnomalyID = &id
		}
	}
	if r.Type == domain.EventAnomalyResolved {
		d, err := domain.DataOf[domain.AnomalyResolved](r.Event)
		if err != nil {
			return Effect{}, err
		}
		res := string(d.Resolution)
		data.Resolution = &res
	}
	id := EffectID(r.ID)
	body, err := json.Marshal(CloudEvent{
		SpecVersion: "1.0", ID: id.String(), Source: "/anomalyd/tenants/" + r.TenantID,
		Type: EffectType(after), Subject: agent.String(), Time: r.OccurredAt.UTC(),
		DataContentType: "application/json", Data: data,
	})
	if err != nil {
		return Effect{}, err
	}
	return Effect{ID: id, Subject: EffectSubject(r.TenantID, agent), CausePosition: r.Position, Body: body}, nil
}
