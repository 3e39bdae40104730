// Package jetstream is the event store on NATS JetStream: one JetStream stream
// holds every event, one subject per aggregate, and the stream sequence is the
// store's global position. It runs on an embedded server (see StartEmbedded) or
// on an external NATS cluster reached by URL.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
)

// Defaults of Config.
const (
	DefaultStream        = "ANOMALYD_EVENTS"
	DefaultSubjectPrefix = "anomalyd.events"
)

// VersionHeader carries the aggregate version of an event, so that finding a
// stream's version costs one message lookup and no decoding.
const VersionHeader = "Anomalyd-Version"

// DefaultHeadCache bounds the cache of stream heads by default; past the bound
// an arbitrary entry is evicted, which only costs one lookup on that stream's
// next append.
const DefaultHeadCache = 16384

// Config names the JetStream stream and subjects the Store uses.
type Config struct {
	Stream        string // JetStream stream name; default DefaultStream
	SubjectPrefix string // subjects are <prefix>.<tenant>.<category>.<id>; default DefaultSubjectPrefix
	Replicas      int    // stream replicas; default 1
	// HeadCache is how many streams' last events (version and sequence) the
	// store keeps, so that an append needs no lookup first; default
	// DefaultHeadCache. A stale entry costs a refused publish and a lookup.
	// The heads are kept by a hash of their subject, in a map without
	// pointers, up to about 100 bytes each: a large cache costs the collector
	// nothing to mark.
	HeadCache int
}

// Store is the JetStream implementation of eventstore.Store. It is safe for
// concurrent use.
type Store struct {
	js     njs.JetStream
	stream njs.Stream
	name   string
	prefix string

	mu sync.Mutex
	// heads maps a subject, by its hash, to its last known event (see
	// Append). The hash keeps the map free of pointers, so the collector does
	// not mark it however large it is. Two subjects with one hash would only
	// cost a refused publish and a lookup: a head is a hint, and the server's
	// check of the expected sequence is the authority.
	heads     map[uint64]head
	seed      maphash.Seed
	headLimit int
}

// head is the last event known on a subject: its aggregate version, its stream
// sequence (what Nats-Expected-Last-Subject-Sequence compares with) and its id.
type head struct {
	version uint64
	seq     uint64
	id      uuid.UUID
}

// safeName reports whether s is 1 to max characters of [A-Za-z0-9_-]: a
// subject token (max 128) or a stream name (max 255) that addresses nothing
// else. Every append and read checks its stream id's three tokens, so this is
// a loop rather than a regexp, which cost several times as much.
func safeName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// New returns a Store on js, creating the JetStream stream or updating its
// configuration. Events are immutable, so the stream denies deletes and purges
// and has no limits. It returns an INVALID_INPUT *domain.Error for a malformed
// stream name or subject prefix, and a wrapped NATS error when the stream cannot
// be created or updated.
func New(ctx context.Context, js njs.JetStream, cfg Config) (*Store, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultSubjectPrefix
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.HeadCache <= 0 {
		cfg.HeadCache = DefaultHeadCache
	}
	if !safeName(cfg.Stream, 255) {
		return nil, domain.Errorf(domain.EINVALID, "jetstream: invalid stream name %q", cfg.Stream)
	}
	for _, tok := range strings.Split(cfg.SubjectPrefix, ".") {
		if !safeName(tok, 128) {
			return nil, domain.Errorf(domain.EINVALID, "jetstream: invalid subject prefix %q", cfg.SubjectPrefix)
		}
	}
	stream, err := js.CreateOrUpdateStream(ctx, njs.StreamConfig{
		Name:        cfg.Stream,
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Storage:     njs.FileStorage,
		Replicas:    cfg.Replicas,
		AllowDirect: true,
		DenyDelete:  true,
		DenyPurge:   true,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fail(ctx, "create stream "+cfg.Stream, err)
	}
	return &Store{js: js, stream: stream, name: cfg.Stream, prefix: cfg.SubjectPrefix, heads: map[uint64]head{}, seed: maphash.MakeSeed(), headLimit: cfg.HeadCache}, nil
}

// Append appends ev to its stream if the stream is at version expected. The
// stream's version maps to JetStream's per-subject sequence through a cache of
// each subject's last event, filled from the server on a miss. It returns an
// INVALID_INPUT *domain.Error for a malformed event or stream id, a
// *domain.ConcurrencyError (CONFLICT) on a version mismatch, and a wrapped NATS
// error otherwise. A retry of an event already stored at version expected+1
// succeeds with the original position.
func (s *Store) Append(ctx context.Context, expected uint64, ev domain.Event) (eventstore.Recorded, error) {
	if err := validate(expected, ev); err != nil {
		return eventstore.Recorded{}, err
	}
	subj, err := s.subject(ev.Stream)
	if err != nil {
		return eventstore.Recorded{}, err
	}
	data, err := eventstore.MarshalEvent(ev)
	if err != nil {
		return eventstore.Recorded{}, domain.Errorf(domain.EINVALID, "jetstream: encode event: %v", err)
	}

	// A cached head can only be behind the server, never ahead: an expected
	// version below it is stale for sure, one above it needs a lookup. A new
	// stream (expected 0) needs none: the server refuses the publish if the
	// subject has a message after all, and conflict looks then.
	known, cached := s.cached(subj)
	fresh := !cached && expected > 0 || expected > known.version
	if fresh {
		if known, err = s.lookup(ctx, subj); err != nil {
			return eventstore.Recorded{}, err
		}
	}
	if expected != known.version {
		return s.conflict(ctx, subj, expected, ev, known, fresh)
	}

	msg := nats.NewMsg(subj)
	msg.Data = data
	msg.Header.Set(VersionHeader, strconv.FormatUint(ev.Version, 10))
	// The option takes a pointer internally, so 0 is sent too; the server reads
	// 0 as "no message on this subject yet".
	ack, err := s.js.PublishMsg(ctx, msg,
		njs.WithMsgID(ev.ID.String()),
		njs.WithExpectLastSequencePerSubject(known.seq))
	if err != nil {
		if wrongLastSequence(err) {
			s.forget(subj)
			return s.conflict(ctx, subj, expected, ev, head{}, false)
		}
		return eventstore.Recorded{}, fail(ctx, "append", err)
	}
	if ack.Duplicate {
		// The server deduplicated by Nats-Msg-Id: the event is stored, at the
		// sequence the ack reports. The cache may not match it, so drop it.
		s.forget(subj)
	} else {
		s.remember(subj, head{version: ev.Version, seq: ack.Sequence, id: ev.ID})
	}
	return eventstore.Recorded{Event: ev, Position: ack.Sequence}, nil
}

// conflict settles an append whose expected version is not the stream's: a retry
// of the event stored at version expected+1 succeeds with that event's position,
// anything else is a *domain.ConcurrencyError. known is the caller's view of the
// stream's head, fresh if it has just been looked up.
func (s *Store) conflict(ctx context.Context, subj string, expected uint64, ev domain.Event, known head, fresh bool) (eventstore.Recorded, error) {
	if !fresh && (known.version != expected+1 || known.id != ev.ID) {
		var err error
		if known, err = s.lookup(ctx, subj); err != nil {
			return eventstore.Recorded{}, err
		}
	}
	if known.version > expected {
		at := known
		if known.version != expected+1 {
			var err error
			if at, err = s.headAt(ctx, subj, expected+1, known.seq); err != nil {
				return eventstore.Recorded{}, err
			}
		}
		if at.id == ev.ID {
			return eventstore.Recorded{Event: ev, Position: at.seq}, nil
		}
	}
	return eventstore.Recorded{}, &domain.ConcurrencyError{Stream: ev.Stream, Expected: expected, Actual: known.version}
}

// ReadStream returns the events of stream with version > after, oldest first.
// The subject's last message comes first, so reading a stream of one event, or
// only its newest event, costs one round trip. It returns an INVALID_INPUT
// *domain.Error for a malformed stream id, an INTERNAL_ERROR *domain.Error for a
// stored event it cannot decode, and a wrapped NATS error otherwise.
func (s *Store) ReadStream(ctx context.Context, stream domain.StreamID, after uint64) ([]eventstore.Recorded, error) {
	subj, err := s.subject(stream)
	if err != nil {
		return nil, err
	}
	last, err := s.lastMsg(ctx, subj)
	if err != nil || last == nil {
		return nil, err
	}
	lastRec, err := record(last)
	if err != nil {
		return nil, err
	}
	s.remember(subj, head{version: lastRec.Version, seq: last.Sequence, id: lastRec.ID})
	switch {
	case lastRec.Version <= after:
		return nil, nil
	case lastRec.Version == after+1:
		return []eventstore.Recorded{lastRec}, nil
	}
	out := make([]eventstore.Recorded, 0, lastRec.Version-after)
	err = s.scan(ctx, subj, last.Sequence-1, func(m *njs.RawStreamMsg) (bool, error) {
		v, _, err := meta(m)
		if err != nil || v <= after {
			return true, err
		}
		r, err := record(m)
		out = append(out, r)
		return true, err
	})
	if err != nil {
		return nil, err
	}
	return append(out, lastRec), nil
}

// Subscribe calls fn for every event with a position greater than from, in
// stream order, through an ordered consumer that it deletes on return. The
// consumer does not filter: New gives the stream the one subject space
// <prefix>.>, and a filter, even that one, costs the server a subject match per
// message (about 4 % of a replay's CPU). A message outside it, possible only in
// a stream whose prefix an operator changed, is skipped here, as ReadStream
// never sees it either. It returns ctx.Err() when ctx ends, fn's error when fn
// fails, an INTERNAL_ERROR *domain.Error for a stored event it cannot decode,
// and a wrapped NATS error when the consumer fails (for instance after a long
// loss of the connection).
func (s *Store) Subscribe(ctx context.Context, from uint64, fn func(eventstore.Recorded) error) error {
	cfg := njs.OrderedConsumerConfig{
		DeliverPolicy:    njs.DeliverAllPolicy,
		MaxResetAttempts: 5,
	}
	if from > 0 {
		cfg.DeliverPolicy = njs.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	cons, err := s.js.OrderedConsumer(ctx, s.name, cfg)
	if err != nil {
		return fail(ctx, "subscribe", err)
	}
	defer s.deleteConsumer(ctx, cons)
	it, err := cons.Messages()
	if err != nil {
		return fail(ctx, "subscribe", err)
	}
	defer it.Stop()
	// The end of ctx stops the iterator, which ends a Next waiting for a
	// message and a consumer reset in progress alike; Next then fails and
	// fail returns ctx.Err(). (A context given to each Next as well would cost
	// two allocations per event and end no more.)
	defer context.AfterFunc(ctx, it.Stop)()

	for {
		m, err := it.Next()
		if err != nil {
			return fail(ctx, "subscribe", err)
		}
		if !s.ours(m.Subject()) {
			continue
		}
		md, err := m.Metadata()
		if err != nil {
			return fail(ctx, "subscribe: metadata", err)
		}
		ev, err := eventstore.UnmarshalEvent(m.Data())
		if err != nil {
			return fmt.Errorf("jetstream: subscribe: message %d: %w", md.Sequence.Stream, err)
		}
		if err := fn(eventstore.Recorded{Event: ev, Position: md.Sequence.Stream}); err != nil {
			return err
		}
	}
}

// deleteConsumer removes the subscription's server-side consumer at once rather
// than after its inactivity threshold. Failure is harmless: the server would
// remove it later anyway.
func (s *Store) deleteConsumer(ctx context.Context, cons njs.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = s.js.DeleteConsumer(ctx, s.name, info.Name)
}

// Head returns the stream's last sequence, the position of the latest event (0
// when empty). It returns a wrapped NATS error when the server cannot answer.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fail(ctx, "head", err)
	}
	return info.State.LastSeq, nil
}

// lookup asks the server for the subject's last event and caches it; a subject
// with no message has the zero head (version 0, sequence 0).
func (s *Store) lookup(ctx context.Context, subj string) (head, error) {
	m, err := s.lastMsg(ctx, subj)
	if err != nil || m == nil {
		return head{}, err
	}
	v, id, err := meta(m)
	if err != nil {
		return head{}, err
	}
	h := head{version: v, seq: m.Sequence, id: id}
	s.remember(subj, h)
	return h, nil
}

// headAt finds the event at version on the subject, scanning up to sequence upTo.
func (s *Store) headAt(ctx context.Context, subj string, version, upTo uint64) (head, error) {
	var found head
	err := s.scan(ctx, subj, upTo, func(m *njs.RawStreamMsg) (bool, error) {
		v, id, err := meta(m)
		if err == nil && v == version {
			found = head{version: v, seq: m.Sequence, id: id}
		}
		return err == nil && v < version, err
	})
	return found, err
}

// lastMsg returns the subject's last message, or nil when it has none.
func (s *Store) lastMsg(ctx context.Context, subj string) (*njs.RawStreamMsg, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, njs.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fail(ctx, "get last message", err)
	}
	return m, nil
}

// scan calls fn on the subject's messages in order, from the first up to
// sequence upTo, until fn returns false. Each step is one direct get.
func (s *Store) scan(ctx context.Context, subj string, upTo uint64, fn func(*njs.RawStreamMsg) (bool, error)) error {
	for seq := uint64(1); seq <= upTo; {
		m, err := s.stream.GetMsg(ctx, seq, njs.WithGetMsgSubject(subj))
		if errors.Is(err, njs.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fail(ctx, "get message", err)
		}
		if m.Sequence > upTo {
			return nil
		}
		more, err := fn(m)
		if err != nil || !more {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}

// ours reports whether subj is under the store's subject prefix.
func (s *Store) ours(subj string) bool {
	return len(subj) > len(s.prefix) && subj[len(s.prefix)] == '.' && strings.HasPrefix(subj, s.prefix)
}

// subject returns the subject of a stream, refusing ids that are not single
// safe subject tokens (a "." or a wildcard would address other streams).
func (s *Store) subject(id domain.StreamID) (string, error) {
	if !safeName(id.Tenant, 128) || !safeName(id.Category, 128) || !safeName(id.ID, 128) {
		return "", domain.Errorf(domain.EINVALID, "jetstream: invalid stream id %q", id.String())
	}
	return s.prefix + "." + id.String(), nil
}

func (s *Store) cached(subj string) (head, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[maphash.String(s.seed, subj)]
	return h, ok
}

// remember caches h unless a newer head is already known: versions only grow,
// and concurrent appends may report out of order.
func (s *Store) remember(subj string, h head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := maphash.String(s.seed, subj)
	cur, ok := s.heads[key]
	if ok && cur.version > h.version {
		return
	}
	if !ok && len(s.heads) >= s.headLimit {
		for k := range s.heads {
			delete(s.heads, k)
			break
		}
	}
	s.heads[key] = h
}

func (s *Store) forget(subj string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.heads, maphash.String(s.seed, subj))
}

// validate checks what the store relies on: the version follows expected, and
// the envelope can be read back (UnmarshalEvent rebuilds the stream's tenant
// from TenantID).
func validate(expected uint64, ev domain.Event) error {
	switch {
	case ev.Version != expected+1:
		return domain.Errorf(domain.EINVALID, "jetstream: event version %d does not follow expected version %d", ev.Version, expected)
	case ev.ID == uuid.Nil:
		return domain.Errorf(domain.EINVALID, "jetstream: event has no id")
	case ev.Type == "":
		return domain.Errorf(domain.EINVALID, "jetstream: event has no type")
	case ev.TenantID != ev.Stream.Tenant:
		return domain.Errorf(domain.EINVALID, "jetstream: event tenant %q is not its stream's tenant %q", ev.TenantID, ev.Stream.Tenant)
	}
	return nil
}

// meta returns a stored message's version and event id from its headers,
// falling back to the body for a message written without them.
func meta(m *njs.RawStreamMsg) (uint64, uuid.UUID, error) {
	v, verr := strconv.ParseUint(m.Header.Get(VersionHeader), 10, 64)
	id, iderr := uuid.Parse(m.Header.Get(njs.MsgIDHeader))
	if verr == nil && iderr == nil {
		return v, id, nil
	}
	r, err := record(m)
	return r.Version, r.ID, err
}

// record decodes a stored message into the event it holds.
func record(m *njs.RawStreamMsg) (eventstore.Recorded, error) {
	ev, err := eventstore.UnmarshalEvent(m.Data)
	if err != nil {
		return eventstore.Recorded{}, fmt.Errorf("jetstream: message %d: %w", m.Sequence, err)
	}
	return eventstore.Recorded{Event: ev, Position: m.Sequence}, nil
}

// wrongLastSequence reports whether err is the server's refusal of an expected
// last subject sequence (10164 is the same refusal from a replicated stream).
func wrongLastSequence(err error) bool {
	var apiErr *njs.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == njs.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == njs.JSErrCodeStreamWrongLastSequenceConstant
}

// fail wraps a NATS error at the border; a cancelled or expired ctx wins, so
// callers can tell their own cancellation from a store failure.
func fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return fmt.Errorf("jetstream: %s: %w", op, err)
}
