package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	njs "github.com/nats-io/nats.go/jetstream"
)

// errEffectsMismatch makes effects check exit non-zero once it has reported
// what is missing, extra or duplicated.
var errEffectsMismatch = errors.New("the effects stream does not match the log")

const (
	// effectCauseHeader is the header in which the publisher records the store
	// position of an effect's causing event (natseffects keeps its constant
	// unexported; the name is part of the effects' wire contract).
	effectCauseHeader = "Anomalyd-Cause-Position"
	// effectsBatch bounds how many effects the consumer buffers at a time.
	effectsBatch = 256
	// effectsIdle is a hang guard: a stream that says it holds more messages but
	// delivers none for this long is an error, not something to wait out.
	effectsIdle = 30 * time.Second
)

// effectsCheck derives from the log which effects the publisher should have
// stored, reads the effects stream, and reports the effects that are missing,
// extra (stored but called for by no event, or not as the log calls for them)
// or duplicated.
//
// It is meant to be run while anomalyd is idle or stopped. The publisher may lag
// the log a little: it publishes in log order, so an expected effect caused
// after the last published effect's cause is reported as pending, not missing,
// and does not fail the check (anomalyd would publish it when it next runs).
func effectsCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("effects check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	openStore := storeFlags(fs, getenv)
	tenant := fs.String("tenant", "", "only this tenant's effects")
	streamName := fs.String("effects-stream", natseffects.DefaultStream, "JetStream stream that holds the effects (any subjects)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *tenant != "" && !domain.ValidTenant(*tenant) {
		return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
	}
	src, err := openEffectsSources(ctx, fs, openStore)
	if err != nil {
		return err
	}
	defer src.close()

	stream, err := src.js.Stream(ctx, *streamName)
	if errors.Is(err, njs.ErrStreamNotFound) {
		return fmt.Errorf("effects stream %s not found (anomalyd creates %s when it starts)", *streamName, natseffects.DefaultStream)
	}
	if err != nil {
		return fmt.Errorf("effects stream %s: %w", *streamName, err)
	}
	// The stream's extent is taken before the log's head: every effect up to it
	// was published after its cause was stored, so each is explained by an event
	// the log read below holds. Effects stored later are not read.
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("effects stream %s: %w", *streamName, err)
	}
	exp, err := expectEffects(ctx, src.store, stderr)
	if err != nil {
		return err
	}
	audit := &effectsAudit{
		exp: exp, tenant: *tenant, out: stdout,
		stored: make(map[uuid.UUID]uint64), causes: make(map[uuid.UUID]storedEffectRef),
	}
	if err := readEffects(ctx, src.js, *streamName, info.State, audit.add); err != nil {
		return fmt.Errorf("read effects stream %s: %w", *streamName, err)
	}
	return audit.finish()
}

// effectsSources are the two things effects check reads: the event log and the
// JetStream that holds the effects.
type effectsSources struct {
	store eventstore.Store
	js    njs.JetStream
	close func()
}

// openEffectsSources opens the log and the effects' JetStream on one NATS
// connection. The effects live in NATS whatever the log's backend: the running
// anomalyd's (--nats-url) or the embedded server of a stopped one
// (--offline-data-dir). storeFlags' opener keeps its NATS connection to itself,
// and the offline data directory can be opened by only one server at a time, so
// the JetStream cases are opened here, with the flags storeFlags declared; only
// EventStoreDB (and a bad --store) goes through storeFlags' opener.
func openEffectsSources(ctx context.Context, fs *flag.FlagSet, openStore func(context.Context) (eventstore.Store, func(), error)) (*effectsSources, error) {
	value := func(name string) string {
		if f := fs.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var store eventstore.Store
	if value("store") != "jetstream" {
		s, closeStore, err := openStore(ctx)
		if err != nil {
			return nil, err
		}
		store, closers = s, append(closers, closeStore)
	}
	nc, closeNATS, err := connectNATS(value("offline-data-dir"), value("nats-url"))
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, closeNATS)
	js, err := njs.New(nc)
	if err != nil {
		closeAll()
		return nil, err
	}
	if store == nil {
		if store, err = jetstream.New(ctx, js, jetstream.Config{}); err != nil {
			closeAll()
			return nil, err
		}
	}
	return &effectsSources{store: store, js: js, close: closeAll}, nil
}

// expectedEffect is an effect the log calls for.
type expectedEffect struct {
	id, cause     uuid.UUID
	position      uint64 // the causing event's store position
	tenant        string
	agent         uuid.UUID
	before, after domain.Containment
}

func (e expectedEffect) String() string {
	return fmt.Sprintf("effect %s (%s, agent %s of tenant %s, cause event %s at position %d)",
		e.id, projections.EffectType(e.after), e.agent, e.tenant, e.cause, e.position)
}

// effectExpectations are the effects the log calls for, in log order.
type effectExpectations struct {
	order []expectedEffect
	byID  map[uuid.UUID]int // index in order
}

type effectsAgentKey struct {
	tenant string
	agent  uuid.UUID
}

// expectEffects reads the log from its first event to its head and folds every
// agent's containment as the effects publisher does: each event that changes an
// agent's effective status calls for one effect. Every tenant is folded, even
// with --tenant, so that every stored effect can be checked against the log
// (see effectsAudit.maxCause).
func expectEffects(ctx context.Context, store eventstore.Store, stderr io.Writer) (*effectExpectations, error) {
	exp := &effectExpectations{byID: make(map[uuid.UUID]int)}
	agents := make(map[effectsAgentKey]*domain.AgentContainment)
	err := scanLog(ctx, store, stderr, func(r eventstore.Recorded) error {
		agent, ok := domain.AgentOf(r.Event)
		if !ok {
			return nil
		}
		key := effectsAgentKey{r.TenantID, agent}
		c := agents[key]
		if c == nil {
			c = &domain.AgentContainment{}
			agents[key] = c
		}
		before := c.Status()
		if err := c.Apply(r.Event); err != nil {
			return fmt.Errorf("event %s at position %d: %w", r.ID, r.Position, err)
		}
		if after := c.Status(); after != before {
			id := projections.EffectID(r.ID)
			exp.byID[id] = len(exp.order)
			exp.order = append(exp.order, expectedEffect{
				id: id, cause: r.ID, position: r.Position, tenant: r.TenantID, agent: agent, before: before, after: after,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return exp, nil
}

// readEffects calls fn for every message of the stream up to the extent it had
// in state, oldest first, whatever its subject. An ordered consumer pulls them
// in batches; fn sees one message at a time and keeps what it needs.
func readEffects(ctx context.Context, js njs.JetStream, stream string, state njs.StreamState,
	fn func(seq uint64, subject, cause string, body []byte)) error {
	if state.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, njs.OrderedConsumerConfig{DeliverPolicy: njs.DeliverAllPolicy})
	if err != nil {
		return err
	}
	it, err := cons.Messages(njs.PullMaxMessages(effectsBatch))
	if err != nil {
		return err
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next(njs.NextMaxWait(effectsIdle))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream > state.LastSeq {
			return nil // stored after the log was read
		}
		fn(meta.Sequence.Stream, m.Subject(), m.Headers().Get(effectCauseHeader), m.Data())
		// NumPending also ends the read when the last message the state counted
		// has since been deleted (a stream other than the effects stream may
		// allow that).
		if meta.Sequence.Stream == state.LastSeq || meta.NumPending == 0 {
			return nil
		}
	}
}

// storedEffectRef names the first stored effect of a causing event.
type storedEffectRef struct {
	id  uuid.UUID
	seq uint64
}

// effectsAudit compares stored effects, one at a time, with what the log calls
// for. It keeps ids and counts, never bodies.
type effectsAudit struct {
	exp    *effectExpectations
	tenant string // "" for every tenant
	out    io.Writer

	stored map[uuid.UUID]uint64          // effect id → stream sequence of its first copy
	causes map[uuid.UUID]storedEffectRef // cause event id → its first stored effect
	// maxCause is the highest cause position among stored effects that match the
	// log exactly, header included, across all tenants. The publisher stores
	// effects in log order, so in normal operation it is the last stored
	// effect's Anomalyd-Cause-Position, from which a restarted publisher resumes;
	// only verified effects count, so that a planted message with a high header
	// cannot turn missing effects into pending ones.
	maxCause uint64

	nStored, missing, extra, duplicated, pending int
}

// add checks one stored message.
func (a *effectsAudit) add(seq uint64, subject, causeHeader string, body []byte) {
	var ce projections.CloudEvent
	err := json.Unmarshal(body, &ce)
	var id uuid.UUID
	if err == nil {
		id, err = uuid.Parse(ce.ID)
	}
	if err != nil {
		// Without a readable body its tenant is unknown: reported under any --tenant.
		a.nStored++
		a.report(&a.extra, "EXTRA message at stream sequence %d (subject %s) is not an effect CloudEvent: %v", seq, subject, err)
		return
	}
	tenant, cause := ce.Data.TenantID, ce.Data.CauseEventID
	i, known := a.exp.byID[id]
	var problems []string
	if known {
		e := a.exp.order[i]
		tenant, cause = e.tenant, e.cause // the log, not the body, says whose it is
		problems = effectProblems(e, ce, subject, causeHeader)
		if len(problems) == 0 {
			a.maxCause = max(a.maxCause, e.position)
		}
	}
	if a.tenant != "" && tenant != a.tenant {
		return
	}
	a.nStored++
	desc := fmt.Sprintf("effect %s (%s, agent %s of tenant %s, cause event %s)", id, ce.Type, ce.Data.AgentID, tenant, cause)
	first, again := a.stored[id]
	if again {
		a.report(&a.duplicated, "DUPLICATED %s stored again at stream sequence %d, first at %d", desc, seq, first)
	} else {
		a.stored[id] = seq
	}
	if cause != uuid.Nil && !again {
		if prev, ok := a.causes[cause]; ok {
			a.report(&a.duplicated, "DUPLICATED cause event %s caused effect %s (stream sequence %d) and effect %s (stream sequence %d)",
				cause, prev.id, prev.seq, id, seq)
		} else {
			a.causes[cause] = storedEffectRef{id, seq}
		}
	}
	switch {
	case !known && !again:
		a.report(&a.extra, "EXTRA %s at stream sequence %d: no event of the log calls for it", desc, seq)
	case len(problems) > 0:
		a.report(&a.extra, "EXTRA %s at stream sequence %d is not what the log calls for: %s", desc, seq, strings.Join(problems, "; "))
	}
}

// effectProblems lists how a stored effect differs from the expected one. The
// subject is compared only when it is an effects subject, so that a copy of the
// stream under other subjects can be checked too.
func effectProblems(e expectedEffect, ce projections.CloudEvent, subject, causeHeader string) []string {
	var p []string
	differs := func(what string, got, want any) {
		if got != want {
			p = append(p, fmt.Sprintf("%s %v, want %v", what, got, want))
		}
	}
	differs("type", ce.Type, projections.EffectType(e.after))
	differs("tenant", ce.Data.TenantID, e.tenant)
	differs("agent", ce.Data.AgentID, e.agent)
	differs("previous status", ce.Data.PreviousStatus, domain.AgentStatus(e.before))
	differs("status", ce.Data.Status, domain.AgentStatus(e.after))
	differs("cause event", ce.Data.CauseEventID, e.cause)
	if pos, err := strconv.ParseUint(causeHeader, 10, 64); err != nil {
		p = append(p, fmt.Sprintf("no valid %s header (%q)", effectCauseHeader, causeHeader))
	} else {
		differs("cause position", pos, e.position)
	}
	if strings.HasPrefix(subject, "maip.effects.") {
		differs("subject", subject, projections.EffectSubject(e.tenant, e.agent))
	}
	return p
}

func (a *effectsAudit) report(count *int, format string, args ...any) {
	*count++
	fmt.Fprintf(a.out, format+"\n", args...)
}

// finish reports the expected effects that were not stored, in log order, and
// the summary. Only missing, extra and duplicated effects fail the check.
func (a *effectsAudit) finish() error {
	expected := 0
	for _, e := range a.exp.order {
		if a.tenant != "" && e.tenant != a.tenant {
			continue
		}
		expected++
		if _, ok := a.stored[e.id]; ok {
			continue
		}
		if e.position > a.maxCause {
			a.report(&a.pending, "PENDING %s: not yet published (the last published effect's cause is at position %d)", e, a.maxCause)
		} else {
			a.report(&a.missing, "MISSING %s", e)
		}
	}
	pending := ""
	if a.pending > 0 {
		pending = fmt.Sprintf("; %d pending, caused after position %d (run again once anomalyd is idle)", a.pending, a.maxCause)
	}
	if a.missing+a.extra+a.duplicated == 0 {
		fmt.Fprintf(a.out, "ok: %d effects expected, %d stored, each once%s\n", expected, a.nStored, pending)
		return nil
	}
	fmt.Fprintf(a.out, "%d missing, %d extra, %d duplicated (%d effects expected, %d stored)%s\n",
		a.missing, a.extra, a.duplicated, expected, a.nStored, pending)
	return errEffectsMismatch
}
