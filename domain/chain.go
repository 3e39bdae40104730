package domain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The hash domains separate anomalyd's event hashes from any other SHA-256 use
// and name the version of the canonical encoding: v1 for the envelopes written
// without a schema_version, v2, which adds it after the type, for every other.
const (
	hashDomainV1 = "anomalyd.event.v1"
	hashDomainV2 = "anomalyd.event.v2"
)

// HashEvent returns the hex SHA-256 of e's canonical encoding: every field of
// the envelope but the hash itself, prev_hash and schema_version included, each
// length-prefixed so that no two events encode alike, with data in compact
// JSON. The first event of a stream has an empty prev_hash; the stream's
// identity is part of every hash, so an event moved to another stream no longer
// matches. The hash covers the event as stored: an event that RestoreEvent
// upcast is hashed with the schema version and data it was stored with (an
// envelope without a schema_version in the v1 encoding, exactly as before
// schema versions existed), so the upcast neither breaks its chain nor lets an
// alteration of the stored bytes pass.
func HashEvent(e Event) string {
	schema, payload := e.asStored()
	// The encoding is built in one buffer and hashed at once: a command hashes
	// twice (the chain it decides on, the event it records), a replay once per
	// event.
	var scratch [64]byte
	b := make([]byte, 0, 320+len(e.TenantID)+len(e.Stream.ID)+len(e.Actor.ID)+len(payload))
	tag := hashDomainV1
	if schema != 0 {
		tag = hashDomainV2
	}
	b = appendField(b, tag)
	b = appendField(b, e.ID.String())
	b = appendField(b, e.Type)
	if schema != 0 { // v1 has no schema version field
		b = appendField(b, strconv.AppendInt(scratch[:0], int64(schema), 10))
	}
	b = appendField(b, e.TenantID)
	b = appendField(b, e.Stream.Category)
	b = appendField(b, e.Stream.ID)
	b = appendField(b, strconv.AppendUint(scratch[:0], e.Version, 10))
	b = appendField(b, e.OccurredAt.UTC().AppendFormat(scratch[:0], time.RFC3339Nano))
	b = appendField(b, e.Actor.Kind)
	b = appendField(b, e.Actor.ID)
	b = appendField(b, e.PrevHash)
	// data, compacted after its length prefix, which is filled in after
	at := len(b)
	b = append(b, make([]byte, 8)...)
	data := bytes.NewBuffer(b)
	if err := json.Compact(data, payload); err != nil {
		data.Truncate(at + 8)
		data.Write(payload)
	}
	b = data.Bytes()
	binary.BigEndian.PutUint64(b[at:], uint64(len(b)-at-8))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendField appends f to b with its length before it.
func appendField[T string | []byte](b []byte, f T) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
	return append(b, f...)
}

// ChainBreak is the first link of a stream's hash chain that does not hold.
type ChainBreak struct {
	Stream  StreamID
	Version uint64
	EventID string
	Reason  string
}

// Error implements the error interface.
func (b *ChainBreak) Error() string {
	return fmt.Sprintf("hash chain of %s broken at version %d (event %s): %s", b.Stream, b.Version, b.EventID, b.Reason)
}

// ChainVerifier checks the hash chains of many streams from their events in any
// interleaving, each stream's events in order. It keeps one link per stream.
type ChainVerifier struct {
	last   map[StreamID]link
	broken map[StreamID]bool
}

type link struct {
	version uint64
	hash    string
}

// NewChainVerifier returns a verifier that has seen no event.
func NewChainVerifier() *ChainVerifier {
	return &ChainVerifier{last: make(map[StreamID]link), broken: make(map[StreamID]bool)}
}

// Check verifies e against the previous event of its stream. It returns a
// *ChainBreak for the first event at which a stream's chain does not hold, and
// nil for every later event of a stream already reported broken.
func (v *ChainVerifier) Check(e Event) error {
	if v.broken[e.Stream] {
		return nil
	}
	prev := v.last[e.Stream]
	brk := func(reason string) error {
		v.broken[e.Stream] = true
		return &ChainBreak{Stream: e.Stream, Version: e.Version, EventID: e.ID.String(), Reason: reason}
	}
	switch {
	case e.Version != prev.version+1:
		return brk(fmt.Sprintf("version %d follows version %d (an event is missing or inserted)", e.Version, prev.version))
	case e.PrevHash != prev.hash:
		return brk(fmt.Sprintf("prev_hash %q does not match the previous event's hash %q", e.PrevHash, prev.hash))
	case e.Hash == "":
		return brk("the event carries no hash")
	}
	if got := HashEvent(e); got != e.Hash {
		return brk(fmt.Sprintf("stored hash %s does not match the event's content (recomputed %s): the event was altered", e.Hash, got))
	}
	v.last[e.Stream] = link{version: e.Version, hash: e.Hash}
	return nil
}

// VerifyChain checks the hash chain of one stream's events, oldest first. It
// returns an INTERNAL_ERROR *Error wrapping the *ChainBreak of the first broken
// link, so that no command is decided on a history that was tampered with.
func VerifyChain(events []Event) error {
	v := NewChainVerifier()
	for _, e := range events {
		if err := v.Check(e); err != nil {
			return &Error{Code: EINTERNAL, Message: "tamper evidence: " + err.Error()}
		}
	}
	return nil
}
