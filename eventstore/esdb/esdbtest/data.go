package esdbtest

import (
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// firstPosition is the log position of the first event. A real node's first
// user event is never at 0 either (the log starts with system records), and
// keeping 0 free lets callers use it as "nothing yet".
const firstPosition = 1024

// Data is the in-memory transaction log of a Server: every event ever
// appended, in commit order, indexed by stream. It is safe for concurrent use
// and outlives the servers that use it, so a test can stop a server and start
// another one on the same Data to simulate a restart.
type Data struct {
	mu      sync.RWMutex
	log     []*record          // every event, by position
	streams map[string]*stream // by stream name
	next    uint64             // position of the next event
	changed chan struct{}      // closed and replaced on every append
}

// stream is one stream of the log.
type stream struct {
	events []*record            // by revision
	ids    map[uuid.UUID]uint64 // event id -> latest revision with it
}

// record is one stored event; it is never modified once appended.
type record struct {
	id        uuid.UUID
	stream    string
	revision  uint64
	position  uint64 // commit and prepare position
	eventType string
	isJSON    bool
	created   int64 // .NET ticks (100 ns) since the Unix epoch
	userMeta  []byte
	data      []byte
	// For a link event (type "$>", data "revision@stream"): its target.
	isLink     bool
	linkedName string
	linkedRev  uint64
}

// proposed is one event of an append request.
type proposed struct {
	id        uuid.UUID
	eventType string
	isJSON    bool
	userMeta  []byte
	data      []byte
}

// NewData returns an empty log.
func NewData() *Data {
	return &Data{
		streams: make(map[string]*stream),
		next:    firstPosition,
		changed: make(chan struct{}),
	}
}

// expectedKind is the kind of an append's expected revision.
type expectedKind int

const (
	expectAny expectedKind = iota
	expectNoStream
	expectStreamExists
	expectRevision
)

// appendOutcome is the result of Data.append.
type appendOutcome struct {
	ok bool
	// current is the stream's last revision after the append (on success: the
	// revision of the last appended or matched event), -1 for no stream.
	current int64
	// position is the position of the last appended (or matched) event; valid
	// when hasPosition.
	position    uint64
	hasPosition bool
}

// append appends events to the stream name if the expectation holds, with
// EventStoreDB's idempotency: re-sending events whose ids are already at the
// revisions the expectation implies succeeds without writing them again.
func (d *Data) append(name string, kind expectedKind, expected uint64, events []proposed) appendOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()

	s := d.streams[name]
	current := int64(-1)
	if s != nil {
		current = int64(len(s.events)) - 1
	}

	switch kind {
	case expectAny, expectStreamExists:
		if kind == expectStreamExists && current < 0 {
			return appendOutcome{current: current}
		}
		// Best-effort idempotency, as the server's id cache does it.
		if s != nil && len(events) > 0 {
			if rev, ok := s.ids[events[0].id]; ok {
				if out, ok := d.matches(s, int64(rev), events); ok {
					return out
				}
			}
		}
	case expectNoStream, expectRevision:
		want := int64(-1)
		if kind == expectRevision {
			want = int64(expected)
			if want < 0 { // does not fit: can never match
				return appendOutcome{current: current}
			}
		}
		if want != current {
			if want < current {
				if out, ok := d.matches(s, want+1, events); ok {
					return out
				}
			}
			return appendOutcome{current: current}
		}
	}

	if len(events) == 0 {
		return appendOutcome{ok: true, current: current}
	}
	if s == nil {
		s = &stream{ids: make(map[uuid.UUID]uint64)}
		d.streams[name] = s
	}
	created := time.Now().UnixNano() / 100
	for _, ev := range events {
		r := &record{
			id:        ev.id,
			stream:    name,
			revision:  uint64(len(s.events)),
			position:  d.next,
			eventType: ev.eventType,
			isJSON:    ev.isJSON,
			created:   created,
			userMeta:  ev.userMeta,
			data:      ev.data,
		}
		r.linkedName, r.linkedRev, r.isLink = parseLink(r.eventType, r.data)
		d.next += recordSize(r)
		s.events = append(s.events, r)
		s.ids[r.id] = r.revision
		d.log = append(d.log, r)
	}
	last := s.events[len(s.events)-1]
	close(d.changed)
	d.changed = make(chan struct{})
	return appendOutcome{ok: true, current: int64(last.revision), position: last.position, hasPosition: true}
}

// matches reports whether the events of s from revision from on have the ids
// of events (all of them, in order); if so it returns the success outcome of
// the original append.
func (d *Data) matches(s *stream, from int64, events []proposed) (appendOutcome, bool) {
	if s == nil || len(events) == 0 || from < 0 || from+int64(len(events)) > int64(len(s.events)) {
		return appendOutcome{}, false
	}
	for i, ev := range events {
		if s.events[from+int64(i)].id != ev.id {
			return appendOutcome{}, false
		}
	}
	last := s.events[from+int64(len(events))-1]
	return appendOutcome{ok: true, current: int64(last.revision), position: last.position, hasPosition: true}, true
}

// recordSize is the room a record takes in the log, so that positions grow
// like byte offsets (increasing, not contiguous) as on a real node.
func recordSize(r *record) uint64 {
	return uint64(96 + len(r.stream) + len(r.eventType) + len(r.userMeta) + len(r.data))
}

// streamEvents returns up to max events of stream name, from revision from on
// (forwards) or from revision from down (backwards), and whether the stream
// exists.
func (d *Data) streamEvents(name string, from uint64, backwards bool, max uint64) ([]*record, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := d.streams[name]
	if s == nil {
		return nil, false
	}
	n := uint64(len(s.events))
	var out []*record
	if backwards {
		if n == 0 {
			return nil, true
		}
		if from > n-1 {
			from = n - 1
		}
		for i := int64(from); i >= 0 && uint64(len(out)) < max; i-- {
			out = append(out, s.events[i])
		}
		return out, true
	}
	for i := from; i < n && uint64(len(out)) < max; i++ {
		out = append(out, s.events[i])
	}
	return out, true
}

// streamLen returns the number of events of stream name.
func (d *Data) streamLen(name string) uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if s := d.streams[name]; s != nil {
		return uint64(len(s.events))
	}
	return 0
}

// streamTail returns up to max events of stream name from revision from on,
// and a channel closed on the next append (to wait on when none is returned).
func (d *Data) streamTail(name string, from uint64, max int) ([]*record, <-chan struct{}) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []*record
	if s := d.streams[name]; s != nil && from < uint64(len(s.events)) {
		end := min(uint64(len(s.events)), from+uint64(max))
		out = append(out, s.events[from:end]...)
	}
	return out, d.changed
}

// logTail returns up to max events of the log from index from on, and a
// channel closed on the next append.
func (d *Data) logTail(from int, max int) ([]*record, <-chan struct{}) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []*record
	if from < len(d.log) {
		end := min(len(d.log), from+max)
		out = append(out, d.log[from:end]...)
	}
	return out, d.changed
}

// logLen returns the number of events in the log.
func (d *Data) logLen() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.log)
}

// logIndex returns the index in the log of the first event whose position is
// >= position (inclusive) or > position (not inclusive).
func (d *Data) logIndex(position uint64, inclusive bool) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return sort.Search(len(d.log), func(i int) bool {
		if inclusive {
			return d.log[i].position >= position
		}
		return d.log[i].position > position
	})
}

// logAt returns the event at index i of the log.
func (d *Data) logAt(i int) *record {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.log[i]
}

// event returns the event of stream name at revision rev, nil if none.
func (d *Data) event(name string, rev uint64) *record {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if s := d.streams[name]; s != nil && rev < uint64(len(s.events)) {
		return s.events[rev]
	}
	return nil
}
