package eventstore

import (
	stdjson "encoding/json"
	"strings"
	"time"
	"unique"

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
// the data's payload is decoded into memory of its own as well. The tenant is
// interned: every event of a tenant shares one copy, which is one heap object
// less per anomaly and per agent for each garbage collection to mark.
func UnmarshalEvent(b []byte) (domain.Event, error) {
	var e envelope
	r, err := json.Parse(b, &e, json.ZeroCopy)
	if _, syntax := err.(*json.SyntaxError); len(r) != 0 && !syntax {
		err = json.Unmarshal(b, &e) // the error it gives for trailing bytes
	}
	w := &e.Envelope
	w.OccurredAt = time.Time(e.OccurredAt)
	if err != nil || misread(w) {
		// The codec reads what encoding/json reads. Where the two may still
		// differ, encoding/json decides: segmentio's integer parser misses
		// some overflows (see misread). The stores never write such an
		// envelope, so their path never comes here.
		*w = domain.Envelope{}
		if stdErr := stdjson.Unmarshal(b, w); stdErr != nil {
			if err == nil {
				err = stdErr
			}
			return domain.Event{}, domain.Errorf(domain.EINTERNAL, "decode event: %v", err)
		}
	}
	w.Hash, w.TenantID = strings.Clone(w.Hash), unique.Make(w.TenantID).Value()
	return domain.RestoreEvent(*w, DecodeData)
}

// DecodeData decodes an event's data into v as encoding/json would, with the
// stores' codec: the domain.DataDecoder of the events UnmarshalEvent returns,
// and the one commands give the events they record (domain.Meta), so that a
// payload is decoded alike on both sides, and fast.
func DecodeData(data []byte, v any) error { return json.Unmarshal(data, v) }

// misread reports whether segmentio may have misread one of w's numbers.
// Its integer parser checks overflow by comparing each step with the last, so
// it takes some numbers past the type's range for others: the version
// 21000000000000000000 for 2553255926290448384. A number misread that way has
// at least 19 digits before it wraps, and the wrapped value is never smaller
// than that prefix: it is 10^18 or more for the uint64 version and 10^17 or
// more for the int schema version, far past any real one.
func misread(w *domain.Envelope) bool {
	return w.Version >= 1e18 || w.SchemaVersion != nil && int64(*w.SchemaVersion) >= 1e17
}

// envelope is domain.Envelope as segmentio decodes it, with occurred_at read
// by time.Time's own UnmarshalJSON, as encoding/json reads it: segmentio's time
// parser differs from it both ways (it refuses a comma before the fraction of
// a second, and takes "0001-01/01" for a date).
type envelope struct {
	domain.Envelope
	OccurredAt stdTime `json:"occurred_at"`
}

// stdTime decodes with time.Time's UnmarshalJSON.
type stdTime time.Time

func (t *stdTime) UnmarshalJSON(b []byte) error { return (*time.Time)(t).UnmarshalJSON(b) }
