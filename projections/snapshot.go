package projections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// A snapshot keeps the read models on disk as they were folded up to one event
// of the log, so that a start-up folds only the events after it instead of
// the whole log. It is a copy of what the log says, never a source of its
// own: it is used only when the log still holds, at its position, the very
// event (id and hash) it was taken after, and only once it has been read to
// its end and its checksum matched. Anything else (no file, another format, a
// log that was replaced or cut short, a damaged file) leaves the caller to
// replay the whole log, as it would without a snapshot.
//
// The file is JSON lines: a header (format, version, the event it was taken
// after, how many lines follow), one line per anomaly, agent and tenant
// policy, and an end line with their counts and the SHA-256 of every byte
// before it.

const (
	snapshotFormat = "anomalyd read models"
	// snapshotVersion names the layout of the lines and the fold rules of the
	// read models. Change it with any change to AnomalyView, AnomalyState,
	// domain.AgentRecord or domain.Hold (TestSnapshotLayoutIsPinned fails
	// until you do), or to how an event folds: a snapshot of another version is
	// not used, the log is replayed.
	snapshotVersion = 1
	// maxSnapshotLine bounds one line: an anomaly with the largest details
	// and free texts, every byte escaped, is well under it.
	maxSnapshotLine = 16 << 20
)

// EventRef identifies one event of the log, where it is and what it is: the
// event a snapshot was taken after.
type EventRef struct {
	Position uint64    `json:"position"`
	Tenant   string    `json:"tenant"`
	Category string    `json:"category"`
	Stream   string    `json:"stream_id"`
	Version  uint64    `json:"version"`
	EventID  uuid.UUID `json:"event_id"`
	Hash     string    `json:"hash"`
}

func refOf(r eventstore.Recorded) EventRef {
	return EventRef{
		Position: r.Position, Tenant: r.Stream.Tenant, Category: r.Stream.Category, Stream: r.Stream.ID,
		Version: r.Version, EventID: r.ID, Hash: r.Hash,
	}
}

// ReadModels are the read models that one runner folds together, and that a
// snapshot holds.
type ReadModels struct {
	Anomalies *Anomalies
	Agents    *Agents
	Policies  *Policies
}

// NewReadModels returns empty read models.
func NewReadModels() ReadModels {
	return ReadModels{Anomalies: NewAnomalies(), Agents: NewAgents(), Policies: NewPolicies()}
}

// Cut returns a copy of m as it is now, for SaveSnapshot while folding goes
// on: it copies the read models' indexes, not their entries, and an entry
// folded after the cut is copied before it changes, once. It must be called on
// the goroutine that folds m, between two events (from a Projector that comes
// after m's in a Multi). The copy serves SaveSnapshot only: its anomalies have
// no index by id.
func (m ReadModels) Cut() ReadModels {
	return ReadModels{Anomalies: m.Anomalies.cut(), Agents: m.Agents.cut(), Policies: &Policies{policies: m.Policies.All()}}
}

// SnapshotInfo describes a snapshot written or read.
type SnapshotInfo struct {
	Last      EventRef // the last event folded into it
	WrittenAt time.Time
	Anomalies int
	Agents    int
	Policies  int
	Bytes     int64
}

type snapshotHeader struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	Last      EventRef  `json:"last_event"`
	WrittenAt time.Time `json:"written_at"`
	// How many lines follow, so that a reader sizes its maps once: the
	// anomalies of each tenant, and the agents.
	Anomalies map[string]int `json:"anomalies"`
	Agents    int            `json:"agents"`
}

// snapshotLine is one line after the header: exactly one field is set.
type snapshotLine struct {
	Anomaly *AnomalyView    `json:"anomaly,omitempty"`
	Agent   *snapshotAgent  `json:"agent,omitempty"`
	Policy  *snapshotPolicy `json:"policy,omitempty"`
	End     *snapshotEnd    `json:"end,omitempty"`
}

type snapshotAgent struct {
	Tenant      string             `json:"tenant"`
	AgentID     uuid.UUID          `json:"agent_id"`
	Containment domain.AgentRecord `json:"containment"`
}

type snapshotPolicy struct {
	Tenant string        `json:"tenant"`
	Policy domain.Policy `json:"policy"`
}

type snapshotEnd struct {
	Anomalies int    `json:"anomalies"`
	Agents    int    `json:"agents"`
	Policies  int    `json:"policies"`
	SHA256    string `json:"sha256"` // of every byte before the end line
}

// SaveOptions say how much of the machine SaveSnapshot takes.
type SaveOptions struct {
	// Workers is how many goroutines encode the lines; 0 is one per CPU.
	Workers int
	// Share, between 0 and 1, is the part of its time each worker spends
	// encoding: it rests after each batch for as long as the rest takes, so
	// that a snapshot written while the service runs leaves it the CPU. 0
	// (or 1) encodes without rest.
	Share float64
}

// SaveSnapshot writes m, folded up to and including the event last, to path:
// to a new file beside it, synced, then renamed over path, so that path holds
// the old snapshot or the whole new one, never a part. Nothing may fold into m
// while it runs: its runner has stopped, or m is a Cut. It stops with ctx's
// error, leaving path as it was, if ctx ends first.
func SaveSnapshot(ctx context.Context, path string, m ReadModels, last EventRef, opt SaveOptions) (SnapshotInfo, error) {
	if opt.Workers < 1 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case path == "":
		return SnapshotInfo{}, errors.New("save snapshot: no file named")
	case last.Position == 0 || last.Version == 0:
		return SnapshotInfo{}, errors.New("save snapshot: nothing folded")
	}
	info := SnapshotInfo{Last: last, WrittenAt: time.Now().UTC()}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, fmt.Errorf("save snapshot: %w", err)
	}
	// A save cut short by a kill leaves its new file behind; the next one
	// clears it away.
	if stale, err := filepath.Glob(filepath.Join(dir, filepath.Base(path)+".*.tmp")); err == nil {
		for _, name := range stale {
			os.Remove(name)
		}
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return info, fmt.Errorf("save snapshot: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := &snapshotWriter{w: bufio.NewWriterSize(f, 1<<20), sum: sha256.New()}
	h := snapshotHeader{Format: snapshotFormat, Version: snapshotVersion, Last: last, WrittenAt: info.WrittenAt}
	h.Anomalies, h.Agents = m.sizes()
	w.line(h)
	info.Anomalies, info.Agents, info.Policies = m.write(ctx, w, opt)
	if w.err == nil {
		w.err = ctx.Err()
	}
	w.end(snapshotEnd{Anomalies: info.Anomalies, Agents: info.Agents, Policies: info.Policies})
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil {
		w.err = f.Sync()
	}
	if err := errors.Join(w.err, f.Close()); err != nil {
		return info, fmt.Errorf("save snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return info, fmt.Errorf("save snapshot: %w", err)
	}
	tmp = ""
	info.Bytes = w.n
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		err = d.Sync()
		d.Close()
		if err != nil {
			return info, fmt.Errorf("save snapshot: sync %s: %w", dir, err)
		}
	}
	return info, nil
}

// sizes returns how many anomalies each tenant has in m, and how many agents.
func (m ReadModels) sizes() (map[string]int, int) {
	m.Anomalies.mu.RLock()
	anomalies := make(map[string]int, len(m.Anomalies.tenants))
	for t, ta := range m.Anomalies.tenants {
		anomalies[t] = len(ta.order)
	}
	m.Anomalies.mu.RUnlock()
	m.Agents.mu.RLock()
	defer m.Agents.mu.RUnlock()
	return anomalies, len(m.Agents.agents)
}

// write writes every anomaly, agent and policy of m and returns their counts.
// The lines are encoded on opt.Workers goroutines, in batches, and written in
// order. Once ctx ends, no more batches are made: the file is cut short.
func (m ReadModels) write(ctx context.Context, w *snapshotWriter, opt SaveOptions) (anomalies, agents, policies int) {
	work := make(chan *encodeBatch, 2*opt.Workers)
	ordered := make(chan *encodeBatch, 4*opt.Workers)
	go func() {
		defer close(ordered)
		defer close(work)
		b := &encodeBatch{done: make(chan struct{})}
		stopped := false
		add := func(l snapshotLine) {
			if b.lines = append(b.lines, l); len(b.lines) < snapshotBatchLines {
				return
			}
			if stopped = stopped || ctx.Err() != nil; stopped {
				b.lines = b.lines[:0] // the save fails; the rest is not written
				return
			}
			work <- b
			ordered <- b
			b = &encodeBatch{done: make(chan struct{})}
		}
		m.Anomalies.mu.RLock()
		tenants := make([]string, 0, len(m.Anomalies.tenants))
		for t := range m.Anomalies.tenants {
			tenants = append(tenants, t)
		}
		slices.Sort(tenants)
		for _, t := range tenants {
			for _, v := range m.Anomalies.tenants[t].order {
				add(snapshotLine{Anomaly: v})
				anomalies++
			}
		}
		m.Anomalies.mu.RUnlock()
		m.Agents.mu.RLock()
		for k, c := range m.Agents.agents {
			add(snapshotLine{Agent: &snapshotAgent{Tenant: k.tenant, AgentID: k.agent, Containment: c.Record()}})
			agents++
		}
		m.Agents.mu.RUnlock()
		for t, p := range m.Policies.All() {
			add(snapshotLine{Policy: &snapshotPolicy{Tenant: t, Policy: p}})
			policies++
		}
		if len(b.lines) > 0 {
			work <- b
			ordered <- b
		}
	}()
	for range opt.Workers {
		go func() {
			for b := range work {
				start := time.Now()
				b.encode()
				if opt.Share > 0 && opt.Share < 1 {
					rest := time.Duration(float64(time.Since(start)) * (1 - opt.Share) / opt.Share)
					select {
					case <-time.After(rest):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	for b := range ordered {
		<-b.done
		if w.err == nil {
			w.err = b.err
		}
		w.sum.Write(b.out)
		w.write(b.out)
	}
	// ordered is closed: the counts are final.
	return anomalies, agents, policies
}

// encodeBatch is a run of lines of a snapshot, encoded by a worker.
type encodeBatch struct {
	lines []snapshotLine
	out   []byte
	err   error
	done  chan struct{}
}

func (b *encodeBatch) encode() {
	defer close(b.done)
	for _, l := range b.lines {
		start := len(b.out)
		if b.out, b.err = json.Append(b.out, l, 0); b.err != nil {
			return
		}
		// Strings are escaped, but a raw message (details) is copied as it
		// is: one stored with its whitespace, by an older build or another
		// writer, would split the line.
		if bytes.IndexByte(b.out[start:], '\n') >= 0 {
			var c bytes.Buffer
			if b.err = json.Compact(&c, b.out[start:]); b.err != nil {
				return
			}
			b.out = append(b.out[:start], c.Bytes()...)
		}
		b.out = append(b.out, '\n')
	}
}

// snapshotWriter writes lines of JSON and hashes them, keeping the first error.
type snapshotWriter struct {
	w   *bufio.Writer
	sum hash.Hash
	buf []byte
	n   int64
	err error
}

func (w *snapshotWriter) line(v any) {
	if w.err != nil {
		return
	}
	w.buf, w.err = json.Append(w.buf[:0], v, 0)
	if w.err != nil {
		return
	}
	w.buf = append(w.buf, '\n')
	w.sum.Write(w.buf)
	w.write(w.buf)
}

func (w *snapshotWriter) end(e snapshotEnd) {
	e.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	if w.err != nil {
		return
	}
	w.buf, w.err = json.Append(w.buf[:0], snapshotLine{End: &e}, 0)
	w.write(append(w.buf, '\n'))
}

func (w *snapshotWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	var n int
	n, w.err = w.w.Write(b)
	w.n += int64(n)
}

// Snapshot is a snapshot read back: the read models it holds, not yet checked
// against the log.
type Snapshot struct {
	Models ReadModels
	Info   SnapshotInfo
	path   string
}

// CheckLog checks that store's log holds, at its position, the event the
// snapshot was taken after: only then may its read models be served.
func (s *Snapshot) CheckLog(ctx context.Context, store eventstore.Store) error {
	if err := checkInLog(ctx, store, s.Info.Last); err != nil {
		return fmt.Errorf("snapshot %s: %w", s.path, err)
	}
	return nil
}

// snapshotBatch is a run of lines of a snapshot, which a worker decodes while
// the reader reads on and the lines before it are added to the read models.
type snapshotBatch struct {
	buf   []byte // the lines, without their newlines
	ends  []int  // where each line ends in buf
	first int    // the line number of the first
	lines []snapshotLine
	err   error
	done  chan struct{}
}

const snapshotBatchLines = 512

var batchBufs = sync.Pool{New: func() any { return new([]byte) }}

func (b *snapshotBatch) decode() {
	defer close(b.done)
	b.lines = make([]snapshotLine, len(b.ends))
	from := 0
	for i, end := range b.ends {
		if err := parseLine(b.buf[from:end], &b.lines[i]); err != nil {
			b.err = fmt.Errorf("line %d: %w", b.first+i, err)
			return
		}
		from = end
	}
}

var endPrefix = []byte(`{"end":`)

// sizeHint bounds a count read from a snapshot's header by what a file of
// size bytes can hold (no line is under 64 bytes).
func sizeHint(n int, size int64) int {
	return int(max(0, min(int64(n), size/64)))
}

// ReadSnapshot reads the snapshot at path into new read models. The error
// wraps fs.ErrNotExist when there is none, and says why otherwise: another
// format or version, a line that does not parse into the read models' types
// or that contradicts another, a checksum or counts that do not match, a file
// cut short or with more after its end line. It decodes the lines on every
// CPU, in batches, and adds them to the read models in their order.
func ReadSnapshot(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fail := func(err error) (*Snapshot, error) { return nil, fmt.Errorf("snapshot %s: %w", path, err) }
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), maxSnapshotLine)
	if !sc.Scan() {
		return fail(errors.Join(errors.New("no header"), sc.Err()))
	}
	var h snapshotHeader
	if err := parseLine(sc.Bytes(), &h); err != nil {
		return fail(fmt.Errorf("header: %w", err))
	}
	if h.Format != snapshotFormat || h.Version != snapshotVersion {
		return fail(fmt.Errorf("format %q version %d, want %q version %d", h.Format, h.Version, snapshotFormat, snapshotVersion))
	}
	if h.Last.Position == 0 || h.Last.Version == 0 {
		return fail(errors.New("it names no event it was taken after"))
	}
	// The sizes are hints, and a damaged header must not make a map of a
	// billion entries: no count can exceed the file's lines.
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	h.Agents = sizeHint(h.Agents, st.Size())
	for t, n := range h.Anomalies {
		h.Anomalies[t] = sizeHint(n, st.Size())
	}
	sum := sha256.New()
	sum.Write(sc.Bytes())
	sum.Write([]byte{'\n'})

	// The reader hashes the lines up to the end line and hands them out in
	// batches; the workers decode them; this goroutine adds them in order.
	work := make(chan *snapshotBatch, 2*runtime.GOMAXPROCS(0))
	ordered := make(chan *snapshotBatch, 4*runtime.GOMAXPROCS(0))
	quit := make(chan struct{})
	var (
		endLine  []byte
		afterEnd bool
		readErr  error
	)
	go func() {
		defer close(ordered)
		defer close(work)
		send := func(b *snapshotBatch) bool {
			select {
			case work <- b:
			case <-quit:
				return false
			}
			select {
			case ordered <- b:
				return true
			case <-quit:
				return false
			}
		}
		next := 2
		b := &snapshotBatch{first: next, done: make(chan struct{}), buf: (*batchBufs.Get().(*[]byte))[:0]}
		for sc.Scan() {
			line := sc.Bytes()
			if bytes.HasPrefix(line, endPrefix) {
				endLine = bytes.Clone(line)
				afterEnd = sc.Scan()
				break
			}
			sum.Write(line)
			sum.Write([]byte{'\n'})
			b.buf = append(b.buf, line...)
			b.ends = append(b.ends, len(b.buf))
			if next++; len(b.ends) == snapshotBatchLines {
				if !send(b) {
					return
				}
				b = &snapshotBatch{first: next, done: make(chan struct{}), buf: (*batchBufs.Get().(*[]byte))[:0]}
			}
		}
		readErr = sc.Err()
		if len(b.ends) > 0 {
			send(b)
		}
	}()
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for b := range work {
				b.decode()
			}
		}()
	}

	m := NewReadModels()
	m.Agents.agents = make(agentFold, h.Agents)
	info := SnapshotInfo{Last: h.Last, WrittenAt: h.WrittenAt}
	var restoreErr error
	for b := range ordered {
		<-b.done
		if restoreErr == nil && b.err != nil {
			restoreErr = b.err
		}
		for i := 0; restoreErr == nil && i < len(b.lines); i++ {
			if err := m.restore(b.lines[i], &h); err != nil {
				restoreErr = fmt.Errorf("line %d: %w", b.first+i, err)
			}
			switch l := b.lines[i]; {
			case l.Anomaly != nil:
				info.Anomalies++
			case l.Agent != nil:
				info.Agents++
			default:
				info.Policies++
			}
		}
		buf := b.buf
		batchBufs.Put(&buf)
		if restoreErr != nil {
			select {
			case <-quit:
			default:
				close(quit)
			}
		}
	}
	// ordered is closed: the reader is done with endLine, afterEnd and readErr.
	switch {
	case restoreErr != nil:
		return fail(restoreErr)
	case readErr != nil:
		return fail(readErr)
	case endLine == nil:
		return fail(errors.New("it ends before its end line"))
	case afterEnd:
		return fail(errors.New("more after its end line"))
	}
	var end snapshotLine
	if err := parseLine(endLine, &end); err != nil || end.End == nil || end.Anomaly != nil || end.Agent != nil || end.Policy != nil {
		return fail(errors.Join(errors.New("end line"), err))
	}
	e := *end.End
	if got := hex.EncodeToString(sum.Sum(nil)); e.SHA256 != got {
		return fail(fmt.Errorf("checksum %s, but its lines hash to %s", e.SHA256, got))
	}
	if e.Anomalies != info.Anomalies || e.Agents != info.Agents || e.Policies != info.Policies {
		return fail(fmt.Errorf("counts %d/%d/%d at its end, %d/%d/%d read",
			e.Anomalies, e.Agents, e.Policies, info.Anomalies, info.Agents, info.Policies))
	}
	info.Bytes = st.Size()
	return &Snapshot{Models: m, Info: info, path: path}, nil
}

// parseLine decodes one line into v, refusing fields v does not have: a line
// written by another layout is an error, not a half-filled value.
func parseLine(line []byte, v any) error {
	rest, err := json.Parse(line, v, json.DisallowUnknownFields|json.DontMatchCaseInsensitiveStructFields)
	if err == nil && len(bytes.TrimSpace(rest)) > 0 {
		err = errors.New("more than one JSON value")
	}
	return err
}

// restore adds what l holds, read from the snapshot with header h, to m.
func (m ReadModels) restore(l snapshotLine, h *snapshotHeader) error {
	switch {
	case l.Anomaly != nil && l.Agent == nil && l.Policy == nil:
		v := l.Anomaly
		if v.ID == uuid.Nil || v.Position == 0 || v.Position > h.Last.Position || v.Version == 0 {
			return fmt.Errorf("anomaly %s: position %d, version %d: not an anomaly folded before position %d",
				v.ID, v.Position, v.Version, h.Last.Position)
		}
		v.Intern()
		t := m.Anomalies.tenants[v.Tenant]
		if t == nil {
			n := h.Anomalies[v.Tenant]
			t = &tenantAnomalies{byID: make(map[uuid.UUID]*AnomalyView, n), order: make([]*AnomalyView, 0, n)}
			m.Anomalies.tenants[v.Tenant] = t
		}
		if n := len(t.order); n > 0 && t.order[n-1].Position >= v.Position {
			return fmt.Errorf("anomaly %s of tenant %s is out of order", v.ID, v.Tenant)
		}
		n := len(t.byID)
		if t.byID[v.ID] = v; len(t.byID) == n {
			return fmt.Errorf("anomaly %s of tenant %s appears twice", v.ID, v.Tenant)
		}
		t.order = append(t.order, v)
	case l.Agent != nil && l.Anomaly == nil && l.Policy == nil:
		k := agentKey{tenant: l.Agent.Tenant, agent: l.Agent.AgentID}
		c := l.Agent.Containment.Containment()
		n := len(m.Agents.agents)
		if m.Agents.agents[k] = (&agentEntry{AgentContainment: c}); len(m.Agents.agents) == n {
			return fmt.Errorf("agent %s of tenant %s appears twice", k.agent, k.tenant)
		}
	case l.Policy != nil && l.Anomaly == nil && l.Agent == nil:
		if _, dup := m.Policies.policies[l.Policy.Tenant]; dup {
			return fmt.Errorf("policy of tenant %s appears twice", l.Policy.Tenant)
		}
		m.Policies.policies[l.Policy.Tenant] = l.Policy.Policy.Complete()
	default:
		return errors.New("a line holds not exactly one of anomaly, agent, policy")
	}
	return nil
}

// checkInLog checks that store's log holds the event ref names, unchanged,
// at the position ref gives.
func checkInLog(ctx context.Context, store eventstore.Store, ref EventRef) error {
	if ref.Position == 0 || ref.Version == 0 {
		return errors.New("it names no event it was taken after")
	}
	stream := domain.StreamID{Tenant: ref.Tenant, Category: ref.Category, ID: ref.Stream}
	recs, err := store.ReadStream(ctx, stream, ref.Version-1)
	if err != nil {
		return fmt.Errorf("read the event it was taken after: %w", err)
	}
	if len(recs) == 0 || recs[0].Version != ref.Version {
		return fmt.Errorf("the log has no event %d in stream %s: it is not the log the snapshot was taken of", ref.Version, stream)
	}
	got := recs[0]
	if got.Position != ref.Position || got.ID != ref.EventID || got.Hash != ref.Hash || domain.HashEvent(got.Event) != ref.Hash {
		return fmt.Errorf("event %d of stream %s is not the one the snapshot was taken after (event %s at position %d): it is not the log the snapshot was taken of",
			ref.Version, stream, ref.EventID, ref.Position)
	}
	return nil
}
