// Package eventstore declares the event-store port that every backend implements
// (jetstream, esdb) and, in eventstoretest, the conformance suite they all pass.
package eventstore

import (
	"context"

	"github.com/anomalyd/anomalyd/domain"
)

// Recorded is an event as the store returned it, with its position in the store's
// global order. Positions are strictly increasing in that order but need not be
// contiguous.
type Recorded struct {
	domain.Event
	Position uint64
}

// Store is the event-store port.
//
// Versions count the events of one stream: a new stream is at version 0 and its
// first event has version 1. Every command appends exactly one event, so the port
// appends one event at a time.
type Store interface {
	// Append appends ev to its stream (ev.Stream) if the stream is at version
	// expected (0: the stream must not exist yet). ev.Version must be expected+1.
	// On a version mismatch it returns a *domain.ConcurrencyError. Appending an
	// event whose ID is already in the stream, at the same expected version, is
	// idempotent: it succeeds and returns the position of the first append.
	Append(ctx context.Context, expected uint64, ev domain.Event) (Recorded, error)

	// ReadStream returns the events of a stream with version > after, oldest
	// first. A stream that does not exist gives no events and no error.
	ReadStream(ctx context.Context, stream domain.StreamID, after uint64) ([]Recorded, error)

	// Subscribe calls fn, in the store's global order, for every event with a
	// position greater than from: first those already stored, then each event as
	// it is appended, until ctx ends (it then returns ctx.Err()) or fn returns an
	// error (which it returns). Each event is delivered once per subscription.
	Subscribe(ctx context.Context, from uint64, fn func(Recorded) error) error

	// Head returns the position of the latest event in the store, 0 when empty.
	Head(ctx context.Context) (uint64, error)
}
