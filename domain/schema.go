package domain

import (
	"bytes"
	"encoding/json"
)

// upcaster turns the data of one event type from one schema version into the next.
type upcaster func(json.RawMessage) (json.RawMessage, error)

// schemas is the one table of event schema versions. A type's entry lists the
// upcasting steps from its version 1, step i turning version i+1 into i+2, so
// its current version is one more than the number of steps: a new format is a
// new step here and a new golden file under testdata/events, and the older
// formats stay readable for good. Only anomaly.reported has an older version
// (see upcastAnomalyReportedV1).
var schemas = map[string][]upcaster{
	EventAnomalyReported:             {upcastAnomalyReportedV1}, // current: 2
	EventAnomalyInvestigationStarted: nil,                       // current: 1
	EventAnomalyResolved:             nil,
	EventAnomalyDismissed:            nil,
	EventAgentRestored:               nil,
	EventAgentRevoked:                nil,
	EventPolicyChanged:               nil,
}

// currentSchema returns the schema version the domain writes events of typ
// with, and false for a type it does not know.
func currentSchema(typ string) (int, bool) {
	steps, ok := schemas[typ]
	return len(steps) + 1, ok
}

// upcast brings e's data from the schema version it was stored with to its
// type's current version, one step v→v+1 at a time. It is the only place that
// reads an older format: the folds see the current one only. An event of a type
// the domain does not know passes unchanged, for its reader to refuse. It
// returns an INTERNAL_ERROR *Error for a version newer than the current one (a
// log written by a newer anomalyd must not be misread as an older one) and for
// data that a step cannot read.
func upcast(e Event) (Event, error) {
	steps, ok := schemas[e.Type]
	if !ok {
		return e, nil
	}
	if current := len(steps) + 1; e.SchemaVersion > current {
		return Event{}, Errorf(EINTERNAL, "decode event %s: %s schema version %d is newer than this build reads (%d)",
			e.ID, e.Type, e.SchemaVersion, current)
	}
	for ; e.SchemaVersion <= len(steps); e.SchemaVersion++ {
		data, err := steps[e.SchemaVersion-1](e.Data)
		if err != nil {
			return Event{}, Errorf(EINTERNAL, "decode event %s: upcast %s from schema version %d: %v",
				e.ID, e.Type, e.SchemaVersion, err)
		}
		e.Data = data
	}
	return e, nil
}

// storedPayload is an event's schema version and data as the log holds them,
// kept when RestoreEvent read the event as something else: upcast, or
// written before envelopes carried a schema_version.
type storedPayload struct {
	schema int // 0: the envelope had no schema_version
	data   json.RawMessage
	// What RestoreEvent made of them: the stored form stands for the event
	// only while it still carries these, so an event altered after it was read
	// is hashed and encoded as what it has become.
	version int
	view    json.RawMessage
}

// asStored returns the schema version (0 for none) and the data of e as the log
// holds them: what its hash covers and what EnvelopeOf gives.
func (e *Event) asStored() (int, json.RawMessage) {
	if s := e.stored; s != nil && e.SchemaVersion == s.version && bytes.Equal(e.Data, s.view) {
		return s.schema, s.data
	}
	return e.SchemaVersion, e.Data
}
