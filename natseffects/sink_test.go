package natseffects_test

import (
	"context"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

func effect(cause uint64) projections.Effect {
	agent := uuid.New()
	return projections.Effect{
		ID: uuid.New(), Subject: projections.EffectSubject("acme", agent),
		CausePosition: cause, Body: []byte(`{"specversion":"1.0"}`),
	}
}

// send sends e after seq and waits for the sink's answer.
func send(t *testing.T, s *natseffects.Sink, e projections.Effect, after uint64) error {
	t.Helper()
	done := make(chan error, 1)
	s.Send(t.Context(), e, after, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("no answer to a send")
		return nil
	}
}

func checkLast(t *testing.T, s *natseffects.Sink, wantSeq, wantCause uint64) {
	t.Helper()
	seq, cause, err := s.Last(t.Context())
	if err != nil || seq != wantSeq || cause != wantCause {
		t.Fatalf("Last = %d, %d, %v; want %d, %d", seq, cause, err, wantSeq, wantCause)
	}
}

// The stream stores an effect only as the direct successor of the one named,
// so what it holds is always a prefix of what was sent, and the last stored
// effect is the publisher's checkpoint.
func TestSinkStoresOnlyTheDirectSuccessor(t *testing.T) {
	sink, err := natseffects.New(context.Background(), jetstreamtest.JetStream(t), natseffects.Config{})
	if err != nil {
		t.Fatal(err)
	}
	checkLast(t, sink, 0, 0)

	// A window of sends in flight at once, each after the previous one.
	var answers []chan error
	for i := range 5 {
		done := make(chan error, 1)
		sink.Send(t.Context(), effect(uint64(10+i)), uint64(i), func(err error) { done <- err })
		answers = append(answers, done)
	}
	for i, a := range answers {
		if err := <-a; err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	checkLast(t, sink, 5, 14)

	// One that names the wrong predecessor is refused, and so is every later one.
	if err := send(t, sink, effect(20), 9); err == nil {
		t.Fatal("an effect naming sequence 9 as its predecessor was stored after 5")
	}
	if err := send(t, sink, effect(21), 6); err == nil {
		t.Fatal("the successor of a refused effect was stored")
	}
	checkLast(t, sink, 5, 14)

	// The same effect again, in its place, is acknowledged and not stored twice.
	e := effect(22)
	if err := send(t, sink, e, 5); err != nil {
		t.Fatal(err)
	}
	checkLast(t, sink, 6, 22)
	if err := send(t, sink, e, 6); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	checkLast(t, sink, 6, 22)
}
