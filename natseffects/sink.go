// Package natseffects stores agent effects in a JetStream stream, where
// agent-control subscribers read them live or catch up after being offline.
package natseffects

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/anomalyd/anomalyd/projections"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultStream = "ANOMALYD_EFFECTS"
	// causeHeader carries the store position of the event that caused an effect.
	// The last effect's header is where the publisher resumes after a restart, so
	// the checkpoint is written by the very publish it records.
	causeHeader = "Anomalyd-Cause-Position"
)

// ackLost is how long Send waits for an acknowledgement before it reports the
// publish as failed (the publisher's own, shorter timeout usually acts first).
const ackLost = time.Minute

// Config names the effects stream.
type Config struct {
	Stream    string // default ANOMALYD_EFFECTS
	Replicas  int    // default 1
	Duplicate time.Duration
}

// Sink implements projections.EffectSink on JetStream.
type Sink struct {
	js     njs.JetStream
	stream njs.Stream
}

// New creates or updates the effects stream (subjects maip.effects.>) and
// returns a sink that publishes to it.
func New(ctx context.Context, js njs.JetStream, cfg Config) (*Sink, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Duplicate == 0 {
		cfg.Duplicate = 2 * time.Minute
	}
	s, err := js.CreateOrUpdateStream(ctx, njs.StreamConfig{
		Name:        cfg.Stream,
		Description: "anomalyd agent effects (CloudEvents JSON)",
		Subjects:    []string{"maip.effects.>"},
		Storage:     njs.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicate,
		AllowDirect: true,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("natseffects: create stream %s: %w", cfg.Stream, err)
	}
	return &Sink{js: js, stream: s}, nil
}

// Send publishes e asynchronously with Nats-Msg-Id set to the effect id and
// Nats-Expected-Last-Sequence set to after, so that the stream stores it only
// as the direct successor of the effect at sequence after: one that fails keeps
// every later one out. done gets nil once JetStream acknowledged e (a
// duplicate is acknowledged without being stored again), or the error.
func (s *Sink) Send(ctx context.Context, e projections.Effect, after uint64, done func(error)) {
	msg := nats.NewMsg(e.Subject)
	msg.Data = e.Body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set("Ce-Specversion", "1.0")
	msg.Header.Set("Ce-Id", e.ID.String())
	msg.Header.Set(causeHeader, strconv.FormatUint(e.CausePosition, 10))
	f, err := s.js.PublishMsgAsync(msg, njs.WithMsgID(e.ID.String()), njs.WithExpectLastSequence(after))
	if err != nil {
		done(fmt.Errorf("natseffects: publish %s: %w", e.Subject, err))
		return
	}
	go func() {
		lost := time.NewTimer(ackLost)
		defer lost.Stop()
		select {
		case <-f.Ok():
			done(nil)
		case err := <-f.Err():
			done(fmt.Errorf("natseffects: publish %s: %w", e.Subject, err))
		case <-lost.C:
			done(fmt.Errorf("natseffects: publish %s: no acknowledgement within %s", e.Subject, ackLost))
		case <-ctx.Done():
			done(ctx.Err())
		}
	}()
}

// Last returns the sequence of the last stored effect and the cause position
// its header records, zeros when the stream is empty.
func (s *Sink) Last(ctx context.Context) (seq, cause uint64, err error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("natseffects: stream info: %w", err)
	}
	if info.State.LastSeq == 0 {
		return 0, 0, nil
	}
	m, err := s.stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return 0, 0, fmt.Errorf("natseffects: read last effect (seq %d): %w", info.State.LastSeq, err)
	}
	pos, err := strconv.ParseUint(m.Header.Get(causeHeader), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("natseffects: last effect (seq %d) has no valid %s header", m.Sequence, causeHeader)
	}
	return m.Sequence, pos, nil
}
