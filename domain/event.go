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
	ID   uuid.UUID `json:"event_id"`
	Type string    `json:"type"`
	// SchemaVersion is the version of Data's format for the event's type (the
	// table schemas). Commands record the current version, and RestoreEvent
	// upcasts an event stored with an older one, so that every event a reader
	// gets is at its type's current version. Zero is an envelope without a
	// schema_version, the format from before schema versions existed: such an
	// event is stored and hashed as it was then, and read back as version 1.
	SchemaVersion int `json:"schema_version"`

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

	// stored is the schema version and data as the log holds them when
	// RestoreEvent read them as something else (see asStored): the hash
	// covers the event as stored, and EnvelopeOf gives it back unchanged.
	stored *storedPayload
	// payload is Data decoded, shared by the copies of the event (payloadOf).
	payload *payloadCache
}

// Envelope is an event as the stores keep it, the shape of its JSON: the
// stream travels as its three parts, and SchemaVersion is absent from the
// envelopes written before schema versions existed. The stores encode and
// decode it (eventstore.MarshalEvent, eventstore.UnmarshalEvent); the domain
// says what it holds (EnvelopeOf) and what a decoded one means (RestoreEvent).
type Envelope struct {
	ID            uuid.UUID       `json:"event_id"`
	Type          string          `json:"type"`
	SchemaVersion *int            `json:"schema_version,omitempty"`
	Category      string          `json:"category"`
	StreamID      string          `json:"stream_id"`
	Version       uint64          `json:"version"`
	TenantID      string          `json:"tenant_id"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         Actor           `json:"actor"`
	Data          json.RawMessage `json:"data"`
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
}

// EnvelopeOf returns the envelope to store for e. An event restored by
// RestoreEvent is stored as it was, in its original schema version, so that
// its hash still holds. It returns an error for a negative schema version.
func EnvelopeOf(e Event) (Envelope, error) {
	schema, data := e.asStored()
	var sv *int
	switch {
	case schema < 0:
		return Envelope{}, fmt.Errorf("encode event: schema version %d is not a version", schema)
	case schema > 0:
		sv = &schema
	}
	return Envelope{
		ID: e.ID, Type: e.Type, SchemaVersion: sv, Category: e.Stream.Category, StreamID: e.Stream.ID,
		Version: e.Version, TenantID: e.TenantID, OccurredAt: e.OccurredAt.UTC(),
		Actor: e.Actor, Data: data, PrevHash: e.PrevHash, Hash: e.Hash,
	}, nil
}

// DataDecoder decodes JSON data into v as encoding/json.Unmarshal does; the
// stores give RestoreEvent a faster one.
type DataDecoder func(data []byte, v any) error

// RestoreEvent returns the event that a decoded envelope holds, in any schema
// version of its type up to the current one: it reads an envelope without a
// schema_version as version 1 and upcasts older data to the current version
// (upcast), keeping the stored form for HashEvent and EnvelopeOf. The folds
// decode the event's data with decode (nil: encoding/json), once between them.
// It returns an INTERNAL_ERROR *Error when the envelope is incomplete, when the
// schema version is newer than this build knows, and when older data cannot be
// upcast.
func RestoreEvent(w Envelope, decode DataDecoder) (Event, error) {
	if y := w.OccurredAt.UTC().Year(); y < 1 || y > 9999 {
		return Event{}, Errorf(EINTERNAL, "decode event: occurred_at %s is out of range", w.OccurredAt)
	}
	if w.ID == uuid.Nil || w.Type == "" || w.TenantID == "" || w.Category == "" || w.StreamID == "" || w.Version == 0 {
		return Event{}, Errorf(EINTERNAL, "decode event: envelope incomplete")
	}
	stored := 0
	if w.SchemaVersion != nil {
		if stored = *w.SchemaVersion; stored < 1 {
			return Event{}, Errorf(EINTERNAL, "decode event: schema_version %d is not a version", stored)
		}
	}
	e, err := upcast(Event{
		ID: w.ID, Type: w.Type, SchemaVersion: max(stored, 1),
		Stream:  StreamID{Tenant: w.TenantID, Category: w.Category, ID: w.StreamID},
		Version: w.Version, TenantID: w.TenantID, OccurredAt: w.OccurredAt, Actor: w.Actor, Data: w.Data,
		PrevHash: w.PrevHash, Hash: w.Hash,
	})
	if err != nil {
		return Event{}, err
	}
	if e.SchemaVersion != stored {
		e.stored = &storedPayload{schema: stored, data: w.Data, version: e.SchemaVersion, view: e.Data}
	}
	return e.withPayloadCache(decode), nil
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
	schema, ok := currentSchema(typ)
	if !ok {
		return Event{}, fmt.Errorf("encode %s: the event type has no schema version", typ)
	}
	e := Event{
		ID: m.EventID, Type: typ, SchemaVersion: schema, Stream: stream, Version: version, TenantID: stream.Tenant,
		OccurredAt: m.At.UTC(), Actor: m.Actor, Data: raw, PrevHash: prev,
	}
	e.Hash = HashEvent(e)
	return e.withPayloadCache(m.Decode), nil
}

// Meta is what the caller of a command supplies besides its arguments: the id of
// the event the command will record, the time, and the actor. The domain has no
// clock and no id generator of its own.
type Meta struct {
	EventID uuid.UUID
	At      time.Time
	Actor   Actor
	// Decode decodes the data of the events the command records when a fold
	// reads it (the aggregate's own, right after recording), as a store's
	// DataDecoder does for the events it returns; nil: encoding/json.
	Decode DataDecoder
}
