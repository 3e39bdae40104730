package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
)

// Store implements eventstore.Store on EventStoreDB: one stream per aggregate,
// named with its tenant; the store's version n is the stream revision n-1; the
// position of an event is its commit position in $all.
type Store struct {
	conn   *conn
	prefix string
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to EventStoreDB and waits for it (bounded by
// cfg.StartupTimeout, logging each attempt). It returns an error for a
// malformed URL and when the server does not answer in time; the message says
// when TLS may be the cause.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = "anomalyd-"
	}
	if cfg.StartupTimeout == 0 {
		cfg.StartupTimeout = time.Minute
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := newConn(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := c.waitForServer(ctx, cfg.StartupTimeout); err != nil {
		c.close()
		return nil, err
	}
	return &Store{conn: c, prefix: cfg.StreamPrefix}, nil
}

// Close closes the client.
func (s *Store) Close() { s.conn.close() }

func (s *Store) streamName(id domain.StreamID) (string, error) {
	if !domain.ValidTenant(id.Tenant) || id.Category == "" || id.ID == "" {
		return "", domain.Errorf(domain.EINVALID, "esdb: malformed stream id %q", id)
	}
	return s.prefix + id.String(), nil
}

// Append appends ev if its stream is at version expected. It returns an
// INVALID_INPUT *domain.Error for a malformed event, a *domain.ConcurrencyError
// (CONFLICT) on a version mismatch, and a wrapped client error otherwise. A
// retry of the event stored at version expected+1 succeeds with its position.
func (s *Store) Append(ctx context.Context, expected uint64, ev domain.Event) (eventstore.Recorded, error) {
	if ev.Version != expected+1 || ev.ID.String() == "00000000-0000-0000-0000-000000000000" || ev.Type == "" ||
		ev.TenantID != ev.Stream.Tenant {
		return eventstore.Recorded{}, domain.Errorf(domain.EINVALID, "esdb: event %s: version %d after expected %d, or incomplete envelope", ev.ID, ev.Version, expected)
	}
	name, err := s.streamName(ev.Stream)
	if err != nil {
		return eventstore.Recorded{}, err
	}
	data, err := eventstore.MarshalEvent(ev)
	if err != nil {
		return eventstore.Recorded{}, domain.Errorf(domain.EINVALID, "esdb: encode event: %v", err)
	}
	var rev esdb.ExpectedRevision = esdb.NoStream{}
	if expected > 0 {
		rev = esdb.Revision(expected - 1)
	}
	var res *esdb.WriteResult
	err = s.conn.do(func(c *esdb.Client) error {
		res, err = c.AppendToStream(ctx, name, esdb.AppendToStreamOptions{ExpectedRevision: rev}, esdb.EventData{
			EventID: ev.ID, EventType: ev.Type, ContentType: esdb.ContentTypeJson, Data: data,
		})
		return err
	})
	if k, ok := code(err); ok && k == esdb.ErrorCodeWrongExpectedVersion {
		return s.settle(ctx, name, expected, ev)
	}
	if err != nil {
		return eventstore.Recorded{}, s.conn.fail(ctx, "append to "+name, err)
	}
	if res.NextExpectedVersion == expected && res.CommitPosition > 0 {
		return eventstore.Recorded{Event: ev, Position: res.CommitPosition}, nil
	}
	// An idempotent repeat may not report the original position: read it.
	return s.settle(ctx, name, expected, ev)
}

// settle decides an append the server did not plainly accept: if the event at
// version expected+1 is ev itself, the append had happened before and succeeds
// with that event's position; otherwise it is a concurrency conflict.
func (s *Store) settle(ctx context.Context, name string, expected uint64, ev domain.Event) (eventstore.Recorded, error) {
	recs, err := s.read(ctx, name, expected, 1)
	if err != nil {
		return eventstore.Recorded{}, err
	}
	if len(recs) == 1 && recs[0].ID == ev.ID {
		return eventstore.Recorded{Event: ev, Position: recs[0].Position}, nil
	}
	actual := expected
	if last, err := s.read(ctx, name, math.MaxUint64, 1); err == nil && len(last) == 1 {
		actual = last[0].Version
	}
	return eventstore.Recorded{}, &domain.ConcurrencyError{Stream: ev.Stream, Expected: expected, Actual: actual}
}

// ReadStream returns the events of stream with version > after, oldest first.
// It returns an INVALID_INPUT *domain.Error for a malformed stream id, an
// INTERNAL_ERROR *domain.Error for a stored event it cannot decode, and a
// wrapped client error otherwise.
func (s *Store) ReadStream(ctx context.Context, stream domain.StreamID, after uint64) ([]eventstore.Recorded, error) {
	name, err := s.streamName(stream)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, name, after, math.MaxInt64)
}

// read returns up to count events of the named stream from revision from
// (version from+1) forwards; from math.MaxUint64 reads the last event.
func (s *Store) read(ctx context.Context, name string, from, count uint64) ([]eventstore.Recorded, error) {
	opts := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}
	if from == math.MaxUint64 {
		opts = esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}
	}
	var out []eventstore.Recorded
	err := s.conn.do(func(c *esdb.Client) error {
		out = out[:0]
		rs, err := c.ReadStream(ctx, name, opts, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			re, err := recv(rs)
			if errors.Is(err, errEOF) {
				return nil
			}
			if err != nil {
				return err
			}
			rec, err := decode(re)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
	})
	if k, ok := code(err); ok && k == esdb.ErrorCodeResourceNotFound {
		return nil, nil
	}
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, s.conn.fail(ctx, "read "+name, err)
	}
	return out, nil
}

var errEOF = io.EOF

// recv reads one event; a panic inside the client (it panics on a message it
// does not know) becomes an error instead of taking the process down.
func recv(rs *esdb.ReadStream) (ev *esdb.ResolvedEvent, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("esdb client panicked while reading: %v", v)
		}
	}()
	return rs.Recv()
}

func decode(re *esdb.ResolvedEvent) (eventstore.Recorded, error) {
	e := re.OriginalEvent()
	ev, err := eventstore.UnmarshalEvent(e.Data)
	if err != nil {
		return eventstore.Recorded{}, fmt.Errorf("esdb: event %s of %s: %w", e.EventID, e.StreamID, err)
	}
	return eventstore.Recorded{Event: ev, Position: e.Position.Commit}, nil
}

// Subscribe calls fn for every event of the store's streams with a commit
// position greater than from, through a $all subscription filtered on the
// stream prefix. The client does not reconnect a dropped subscription: Subscribe
// then returns the error, and the caller resubscribes from its checkpoint. It
// returns ctx.Err() when ctx ends and fn's error when fn fails.
func (s *Store) Subscribe(ctx context.Context, from uint64, fn func(eventstore.Recorded) error) error {
	opts := esdb.SubscribeToAllOptions{
		From:   esdb.Start{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{s.prefix}},
	}
	if from > 0 {
		opts.From = esdb.Position{Commit: from, Prepare: from}
	}
	var sub *esdb.Subscription
	err := s.conn.do(func(c *esdb.Client) (err error) {
		sub, err = c.SubscribeToAll(ctx, opts)
		return err
	})
	if err != nil {
		return s.conn.fail(ctx, "subscribe to $all", err)
	}
	defer sub.Close()
	for {
		e := sub.Recv()
		switch {
		case e.SubscriptionDropped != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.conn.fail(ctx, "subscription dropped", e.SubscriptionDropped.Error)
		case e.EventAppeared != nil:
			rec, err := decode(e.EventAppeared)
			if err != nil {
				return err
			}
			if rec.Position <= from {
				continue // a server may repeat the starting event
			}
			if err := fn(rec); err != nil {
				return err
			}
			from = rec.Position
		}
	}
}

// Head returns the commit position of the latest event of the store's streams
// (0 when there is none), reading $all backwards past other streams' events.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var head uint64
	err := s.conn.do(func(c *esdb.Client) error {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, math.MaxInt64)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			re, err := recv(rs)
			if errors.Is(err, errEOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if e := re.OriginalEvent(); len(e.StreamID) >= len(s.prefix) && e.StreamID[:len(s.prefix)] == s.prefix {
				head = e.Position.Commit
				return nil
			}
		}
	})
	if err != nil {
		return 0, s.conn.fail(ctx, "read head of $all", err)
	}
	return head, nil
}
