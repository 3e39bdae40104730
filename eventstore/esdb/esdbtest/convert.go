package esdbtest

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
)

// System metadata keys and content types, as the server writes them.
const (
	metaType        = "type"
	metaContentType = "content-type"
	metaCreated     = "created"
	contentJSON     = "application/json"
	contentOctets   = "application/octet-stream"
	linkEventType   = "$>"
)

// uuidFromProto decodes an event id sent either as a string or as two
// big-endian int64 halves (the client's encoding).
func uuidFromProto(u *shared.UUID) (uuid.UUID, error) {
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(b[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return uuid.UUID(b), nil
	case *shared.UUID_String_:
		return uuid.Parse(v.String_)
	default:
		return uuid.Nil, fmt.Errorf("missing event id")
	}
}

// uuidToProto encodes id as the read request asked for (structured unless the
// request asked for strings).
func uuidToProto(id uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

// parseLink parses a link event ("$>" with data "revision@stream").
func parseLink(eventType string, data []byte) (name string, rev uint64, ok bool) {
	if eventType != linkEventType {
		return "", 0, false
	}
	revText, name, found := strings.Cut(string(data), "@")
	if !found {
		return "", 0, false
	}
	rev, err := strconv.ParseUint(revText, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return name, rev, true
}

// recordedToProto converts a stored event.
func recordedToProto(r *record, uuidAsString bool) *api.ReadResp_ReadEvent_RecordedEvent {
	contentType := contentOctets
	if r.isJSON {
		contentType = contentJSON
	}
	return &api.ReadResp_ReadEvent_RecordedEvent{
		Id:               uuidToProto(r.id, uuidAsString),
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
		StreamRevision:   r.revision,
		PreparePosition:  r.position,
		CommitPosition:   r.position,
		Metadata: map[string]string{
			metaType:        r.eventType,
			metaContentType: contentType,
			metaCreated:     strconv.FormatInt(r.created, 10),
		},
		CustomMetadata: r.userMeta,
		Data:           r.data,
	}
}

// readOptions are the parts of a read request that shape the events sent.
type readOptions struct {
	resolveLinks bool
	uuidAsString bool
}

// eventResp converts a stored event into a read response. With resolveLinks,
// a link event is sent as the linked event with the link beside it, like the
// server does; a link whose target is missing is sent alone as the link.
func (d *Data) eventResp(r *record, o readOptions) *api.ReadResp {
	ev := &api.ReadResp_ReadEvent{
		Event:    recordedToProto(r, o.uuidAsString),
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.position},
	}
	if o.resolveLinks && r.isLink {
		ev.Link = ev.Event
		ev.Event = nil
		if target := d.event(r.linkedName, r.linkedRev); target != nil {
			ev.Event = recordedToProto(target, o.uuidAsString)
		}
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: ev}}
}

// filter is a compiled $all filter: on the stream name or on the event type,
// by prefixes or by a regular expression (the server uses the regex when set).
type filter struct {
	onEventType bool
	prefixes    []string
	re          *regexp.Regexp
}

// newFilter compiles the filter options of a read request; nil options give a
// nil filter, which lets everything through.
func newFilter(o *api.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	f := &filter{}
	switch v := o.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = v.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		expr = v.EventType
		f.onEventType = true
	default:
		return nil, fmt.Errorf("filter: neither stream identifier nor event type")
	}
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, fmt.Errorf("filter regex: %w", err)
		}
		f.re = re
		return f, nil
	}
	f.prefixes = expr.GetPrefix()
	return f, nil
}

// match reports whether r passes the filter.
func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	s := r.stream
	if f.onEventType {
		s = r.eventType
	}
	if f.re != nil {
		return f.re.MatchString(s)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
