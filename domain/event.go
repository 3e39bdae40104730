package domain

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Stream categories: the kinds of aggregate that own a stream.
const (
	CategoryAnomaly = "anomaly"
)

// StreamID names one aggregate's stream. The tenant is part of the name, so a
// request under another tenant cannot even address the stream.
type StreamID struct {
	Tenant   string
	Category string
	ID       string
}

// String returns the stream's canonical name, "<tenant>.<category>.<id>".
func (s StreamID) String() string { return s.Tenant + "." + s.Category + "." + s.ID }

// AnomalyStream returns the stream of one anomaly of a tenant.
func AnomalyStream(tenant string, id uuid.UUID) StreamID {
	return StreamID{Tenant: tenant, Category: CategoryAnomaly, ID: id.String()}
}

// Actor kinds: how the principal that caused an event authenticated.
const (
	ActorAPIKey = "api_key"
	ActorToken  = "token"
	ActorSystem = "system"
)

// Actor is the authenticated principal behind an event. It is recorded on every
// event so that the actor can never be hidden.
type Actor struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// Event is one immutable fact in a stream: the envelope the store keeps, with the
// type-specific payload in Data. Type is a stable string, never a Go type name.
type Event struct {
	ID         uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Stream     StreamID        `json:"-"`
	Version    uint64          `json:"version"`
	TenantID   string          `json:"tenant_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      Actor           `json:"actor"`
	Data       json.RawMessage `json:"data"`
	// PrevHash is the hash of the previous event of the stream ("" for the
	// first) and Hash this event's own (HashEvent): each stream is a hash chain.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// wireEvent is the envelope as stored: the stream travels as its three parts.
type wireEvent struct {
	ID         uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Category   string          `json:"category"`
	StreamID   string          `json:"stream_id"`
	Version    uint64          `json:"version"`
	TenantID   string          `json:"tenant_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      Actor           `json:"actor"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// MarshalEvent encodes an event as the stores keep it.
func MarshalEvent(e Event) ([]byte, error) {
	return json.Marshal(wireEvent{
		ID: e.ID, Type: e.Type, Category: e.Stream.Category, StreamID: e.Stream.ID,
		Version: e.Version, TenantID: e.TenantID, OccurredAt: e.OccurredAt.UTC(),
		Actor: e.Actor, Data: e.Data, PrevHash: e.PrevHash, Hash: e.Hash,
	})
}

// UnmarshalEvent decodes an event written by MarshalEvent. It returns an
// INTERNAL_ERROR *Error when the bytes are not a well-formed event.
func UnmarshalEvent(b []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, Errorf(EINTERNAL, "decode event: %v", err)
	}
	if y := w.OccurredAt.UTC().Year(); y < 1 || y > 9999 {
		return Event{}, Errorf(EINTERNAL, "decode event: occurred_at %s is out of range", w.OccurredAt)
	}
	if w.ID == uuid.Nil || w.Type == "" || w.TenantID == "" || w.Category == "" || w.StreamID == "" || w.Version == 0 {
		return Event{}, Errorf(EINTERNAL, "decode event: envelope incomplete")
	}
	return Event{
		ID: w.ID, Type: w.Type, Stream: StreamID{Tenant: w.TenantID, Category: w.Category, ID: w.StreamID},
		Version: w.Version, TenantID: w.TenantID, OccurredAt: w.OccurredAt, Actor: w.Actor, Data: w.Data,
		PrevHash: w.PrevHash, Hash: w.Hash,
	}, nil
}

var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidTenant reports whether s is a well-formed tenant id: [A-Za-z0-9_-]{1,64}.
func ValidTenant(s string) bool { return tenantPattern.MatchString(s) }

// newEvent builds an event of the given type for a stream at a version, chained
// to the previous event of the stream by its hash prev.
func newEvent(m Meta, stream StreamID, version uint64, prev, typ string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	e := Event{
		ID: m.EventID, Type: typ, Stream: stream, Version: version, TenantID: stream.Tenant,
		OccurredAt: m.At.UTC(), Actor: m.Actor, Data: raw, PrevHash: prev,
	}
	e.Hash = HashEvent(e)
	return e, nil
}

// Meta is what the caller of a command supplies besides its arguments: the id of
// the event the command will record, the time, and the actor. The domain has no
// clock and no id generator of its own.
type Meta struct {
	EventID uuid.UUID
	At      time.Time
	Actor   Actor
}
