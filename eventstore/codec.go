package eventstore

import (
	"strings"

	"github.com/segmentio/encoding/json"

	"github.com/anomalyd/anomalyd/domain"
)

// The stores keep each event as the JSON of its domain.Envelope. The codec is
// github.com/segmentio/encoding/json, which reads and writes the same JSON as
// encoding/json (the golden files under testdata/events pin the bytes) about
// six times faster: decoding the log is most of the time a replay takes.

// MarshalEvent encodes an event as the stores keep it. An event read by
// UnmarshalEvent is written back as it was stored, in its original schema
// version, so that its hash still holds.
func MarshalEvent(e domain.Event) ([]byte, error) {
	w, err := domain.EnvelopeOf(e)
	if err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// UnmarshalEvent decodes an event written by MarshalEvent, in any schema
// version of its type up to the current one (see domain.RestoreEvent). It
// returns an INTERNAL_ERROR *domain.Error when the bytes are not a well-formed
// event, when the schema version is newer than this build knows, and when
// older data cannot be upcast.
//
// The event refers to b, which the caller must not modify afterwards: its
// strings and data are views of b, not copies (json.ZeroCopy). Copying them was
// a sixth of the time a replay spent decoding. Only the hash and the tenant,
// which the read models keep for as long as the aggregate lives, get memory of
// their own, so that a read model does not keep every event's bytes alive;
// the data's payload is decoded into memory of its own as well.
func UnmarshalEvent(b []byte) (domain.Event, error) {
	var w domain.Envelope
	r, err := json.Parse(b, &w, json.ZeroCopy)
	if _, syntax := err.(*json.SyntaxError); len(r) != 0 && !syntax {
		err = json.Unmarshal(b, &w) // the error it gives for trailing bytes
	}
	if err != nil {
		return domain.Event{}, domain.Errorf(domain.EINTERNAL, "decode event: %v", err)
	}
	w.Hash, w.TenantID = strings.Clone(w.Hash), strings.Clone(w.TenantID)
	return domain.RestoreEvent(w, json.Unmarshal)
}
