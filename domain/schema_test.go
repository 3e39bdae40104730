package domain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// legacyEvent is an envelope as anomalyd stored it before schema versions: no
// schema_version, otherwise the fields of today's envelope in the same order.
type legacyEvent struct {
	ID         uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Category   string          `json:"category"`
	StreamID   string          `json:"stream_id"`
	Version    uint64          `json:"version"`
	TenantID   string          `json:"tenant_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      domain.Actor    `json:"actor"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// legacyHash is HashEvent as it was before schema versions (the canonical
// encoding anomalyd.event.v1), written out here rather than taken from the code
// under test; TestLegacyHashIsThePinnedEncoding ties it to the pinned hash.
func legacyHash(e legacyEvent) string {
	h := sha256.New()
	write := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, f := range []string{
		"anomalyd.event.v1", e.ID.String(), e.Type, e.TenantID, e.Category, e.StreamID,
		strconv.FormatUint(e.Version, 10), e.OccurredAt.UTC().Format(time.RFC3339Nano),
		e.Actor.Kind, e.Actor.ID, e.PrevHash,
	} {
		write([]byte(f))
	}
	var data bytes.Buffer
	if err := json.Compact(&data, e.Data); err != nil {
		panic(err)
	}
	write(data.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

func TestLegacyHashIsThePinnedEncoding(t *testing.T) {
	e := pinnedEvent()
	got := legacyHash(legacyEvent{
		ID: e.ID, Type: e.Type, Category: e.Stream.Category, StreamID: e.Stream.ID, Version: e.Version,
		TenantID: e.TenantID, OccurredAt: e.OccurredAt, Actor: e.Actor, Data: e.Data, PrevHash: e.PrevHash,
	})
	if got != pinnedHashV1 {
		t.Fatalf("legacyHash = %s, want the pinned %s", got, pinnedHashV1)
	}
}

// legacyLog writes a log as the code before schema versions stored it, each
// stream chained by legacyHash.
type legacyLog struct {
	t      *testing.T
	n      int
	heads  map[domain.StreamID]legacyEvent
	stored [][]byte
}

func newLegacyLog(t *testing.T) *legacyLog {
	return &legacyLog{t: t, heads: map[domain.StreamID]legacyEvent{}}
}

// add appends an event of typ with data to stream and returns its stored bytes.
func (l *legacyLog) add(stream domain.StreamID, typ, data string) []byte {
	l.t.Helper()
	head := l.heads[stream]
	m := meta(100 + l.n)
	l.n++
	e := legacyEvent{
		ID: m.EventID, Type: typ, Category: stream.Category, StreamID: stream.ID, Version: head.Version + 1,
		TenantID: stream.Tenant, OccurredAt: m.At, Actor: m.Actor, Data: json.RawMessage(data), PrevHash: head.Hash,
	}
	e.Hash = legacyHash(e)
	b, err := json.Marshal(e)
	if err != nil {
		l.t.Fatal(err)
	}
	l.heads[stream] = e
	l.stored = append(l.stored, b)
	return b
}

func readAll(t *testing.T, stored ...[]byte) []domain.Event {
	t.Helper()
	evs := make([]domain.Event, len(stored))
	for i, b := range stored {
		e, err := eventstore.UnmarshalEvent(b)
		if err != nil {
			t.Fatalf("UnmarshalEvent(%s): %v", b, err)
		}
		evs[i] = e
	}
	return evs
}

var otherAnomalyID = uuid.MustParse("44444444-4444-4444-8444-444444444444")

// oldLog is a log written before schema versions: two anomalies of one agent,
// reported in anomaly.reported's version 1 (details null or missing,
// description and reference left out), one investigated and mitigated, then a
// manual restore of the agent.
func oldLog(t *testing.T) (l *legacyLog, a, b [][]byte, agent []byte) {
	l = newLegacyLog(t)
	as, bs := domain.AnomalyStream(tenant, anomalyID), domain.AnomalyStream(tenant, otherAnomalyID)
	A, B, G := anomalyID.String(), otherAnomalyID.String(), agentID.String()
	a = append(a, l.add(as, domain.EventAnomalyReported, `{"anomaly_id":"`+A+`","agent_id":"`+G+
		`","anomaly_type":"rate_spike","severity":"high","details":null,"auto_response":"suspended"}`))
	a = append(a, l.add(as, domain.EventAnomalyInvestigationStarted, `{"anomaly_id":"`+A+`","agent_id":"`+G+
		`","assignee":"erin@example.com","notes":null}`))
	b = append(b, l.add(bs, domain.EventAnomalyReported, `{"anomaly_id":"`+B+`","agent_id":"`+G+
		`","anomaly_type":"trust_drop","severity":"medium","description":"second burst","auto_response":"throttled"}`))
	a = append(a, l.add(as, domain.EventAnomalyResolved, `{"anomaly_id":"`+A+`","agent_id":"`+G+
		`","resolution":"mitigated","notes":"rotated the key","resolved_by":"bob@example.com"}`))
	agent = l.add(domain.AgentStream(tenant, agentID), domain.EventAgentRestored, `{"agent_id":"`+G+
		`","released":["`+A+`"],"notes":null}`)
	return l, a, b, agent
}

// TestReplayLogWrittenBeforeSchemaVersions replays a log as a store returns it
// after the upgrade: the old events are upcast on the way in, their chains
// still verify, they fold into the state the code of today expects, and the
// commands of today continue their streams.
func TestReplayLogWrittenBeforeSchemaVersions(t *testing.T) {
	l, a, b, _ := oldLog(t)
	log := readAll(t, l.stored...)

	t.Run("UpcastToTheCurrentSchema", func(t *testing.T) {
		for _, e := range log {
			want := 1
			if e.Type == domain.EventAnomalyReported {
				want = 2
			}
			if e.SchemaVersion != want {
				t.Errorf("%s read at schema version %d, want %d", e.Type, e.SchemaVersion, want)
			}
		}
		for i, want := range []string{
			`{"anomaly_id":"` + anomalyID.String() + `","agent_id":"` + agentID.String() + `","anomaly_type":"rate_spike","severity":"high","description":null,"details":{},"auto_response":"suspended","references_anomaly_id":null}`,
			`{"anomaly_id":"` + otherAnomalyID.String() + `","agent_id":"` + agentID.String() + `","anomaly_type":"trust_drop","severity":"medium","description":"second burst","details":{},"auto_response":"throttled","references_anomaly_id":null}`,
		} {
			if got := string(log[[]int{0, 2}[i]].Data); got != want {
				t.Errorf("upcast data\n%s\nwant\n%s", got, want)
			}
		}
	})

	t.Run("ChainsVerify", func(t *testing.T) {
		v := domain.NewChainVerifier()
		for _, e := range log {
			if err := v.Check(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := domain.VerifyChain(readAll(t, a...)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("WrittenBackAsStored", func(t *testing.T) {
		for i, e := range log {
			got, err := eventstore.MarshalEvent(e)
			if err != nil || !bytes.Equal(got, l.stored[i]) {
				t.Fatalf("MarshalEvent = %s (%v), want the stored bytes %s", got, err, l.stored[i])
			}
		}
	})

	t.Run("AnomalyFolds", func(t *testing.T) {
		an, err := domain.LoadAnomaly(readAll(t, a...))
		if err != nil {
			t.Fatal(err)
		}
		s := an.State()
		if string(s.Details) != "{}" || s.Description != nil || s.ReferencesAnomalyID != nil {
			t.Fatalf("details %s description %v reference %v, want {} and nulls", s.Details, s.Description, s.ReferencesAnomalyID)
		}
		if s.Status != domain.StatusResolved || s.Resolution != domain.ResolutionMitigated || s.Severity != domain.SeverityHigh ||
			s.AutoResponse != domain.ContainmentSuspended || s.Assignee == nil || *s.Assignee != "erin@example.com" ||
			s.Notes == nil || *s.Notes != "rotated the key" || s.Version != 3 || s.Hash != log[3].Hash {
			t.Fatalf("state = %+v", s)
		}
	})

	t.Run("AgentContainmentFolds", func(t *testing.T) {
		var c domain.AgentContainment
		var got []string
		for _, e := range log {
			if err := c.Apply(e); err != nil {
				t.Fatal(err)
			}
			got = append(got, domain.AgentStatus(c.Status()))
		}
		want := []string{"suspended", "suspended", "suspended", "suspended", "throttled"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("statuses %v, want %v", got, want)
		}
		if _, err := domain.LoadAgent(tenant, agentID, log[4:]); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("TodaysCommandsContinueTheOldChain", func(t *testing.T) {
		bn, err := domain.LoadAnomaly(readAll(t, b...))
		if err != nil {
			t.Fatal(err)
		}
		if err := bn.Dismiss(domain.DismissAnomaly{Reason: "duplicate"}, meta(200)); err != nil {
			t.Fatal(err)
		}
		stored, err := eventstore.MarshalEvent(bn.Changes()[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(stored, []byte(`"schema_version":1,`)) {
			t.Fatalf("a new event is stored without its schema version: %s", stored)
		}
		mixed := readAll(t, b[0], stored)
		if err := domain.VerifyChain(mixed); err != nil {
			t.Fatal(err)
		}
		c := domain.AgentContainment{}
		for _, e := range append(log, mixed[1]) {
			if err := c.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
		if got := domain.AgentStatus(c.Status()); got != "active" {
			t.Fatalf("status %s after the dismissal, want active", got)
		}
	})
}

// TestTamperingAcrossSchemaVersionsIsDetected alters a log of old and new
// events the ways upcasting could hide: the hash covers the event as stored,
// schema version included.
func TestTamperingAcrossSchemaVersionsIsDetected(t *testing.T) {
	_, _, b, _ := oldLog(t)
	bn, err := domain.LoadAnomaly(readAll(t, b...))
	if err != nil {
		t.Fatal(err)
	}
	if err := bn.Dismiss(domain.DismissAnomaly{Reason: "duplicate"}, meta(200)); err != nil {
		t.Fatal(err)
	}
	dismissed, err := eventstore.MarshalEvent(bn.Changes()[0])
	if err != nil {
		t.Fatal(err)
	}
	replace := func(b []byte, old, new string) []byte {
		t.Helper()
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%q is not in %s", old, b)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name   string
		stored func() [][]byte
		mutate func([]domain.Event) // after reading, nil for none
		at     uint64
	}{
		{"OldBytesAltered", func() [][]byte {
			return [][]byte{replace(b[0], `"severity":"medium"`, `"severity":"low"`), dismissed}
		}, nil, 1},
		{"OldDescriptionRemoved", func() [][]byte {
			return [][]byte{replace(b[0], `"description":"second burst",`, ``), dismissed}
		}, nil, 1},
		{"SchemaVersionAddedToOldEvent", func() [][]byte {
			return [][]byte{replace(b[0], `"type":"anomaly.reported",`, `"type":"anomaly.reported","schema_version":2,`), dismissed}
		}, nil, 1},
		{"SchemaVersion1AddedToOldEvent", func() [][]byte {
			return [][]byte{replace(b[0], `"type":"anomaly.reported",`, `"type":"anomaly.reported","schema_version":1,`), dismissed}
		}, nil, 1},
		{"SchemaVersionRemovedFromNewEvent", func() [][]byte {
			return [][]byte{b[0], replace(dismissed, `"schema_version":1,`, ``)}
		}, nil, 2},
		{"UpcastDataAlteredAfterReading", func() [][]byte { return [][]byte{b[0], dismissed} }, func(evs []domain.Event) {
			evs[0].Data = bytes.Replace(evs[0].Data, []byte(`"throttled"`), []byte(`"none"`), 1)
		}, 1},
		{"SchemaVersionAlteredAfterReading", func() [][]byte { return [][]byte{b[0], dismissed} }, func(evs []domain.Event) {
			evs[0].SchemaVersion = 1
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := readAll(t, tt.stored()...)
			if tt.mutate != nil {
				tt.mutate(evs)
			}
			err := domain.VerifyChain(evs)
			var brk *domain.ChainBreak
			v := domain.NewChainVerifier()
			for _, e := range evs {
				if cerr := v.Check(e); cerr != nil {
					errors.As(cerr, &brk)
					break
				}
			}
			if domain.ErrorCode(err) != domain.EINTERNAL || brk == nil || brk.Version != tt.at || !strings.Contains(brk.Reason, "altered") {
				t.Fatalf("VerifyChain = %v, break %+v; want the alteration found at version %d", err, brk, tt.at)
			}
		})
	}
}

// TestUnmarshalEventRefusesSchemaVersionsItCannotRead: a newer anomalyd's
// format must not be misread as the current one.
func TestUnmarshalEventRefusesSchemaVersionsItCannotRead(t *testing.T) {
	golden := func(name string) []byte {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := json.Compact(&out, raw); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	set := func(b []byte, old, new string) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	reported, resolved, v1 := golden("anomaly.reported.v2.json"), golden("anomaly.resolved.v1.json"), golden("anomaly.reported.v1.json")
	tests := []struct {
		name   string
		stored []byte
	}{
		{"InternalWhenNewerThanCurrent", set(reported, `"schema_version":2`, `"schema_version":3`)},
		{"InternalWhenNewerThanCurrentVersion1", set(resolved, `"schema_version":1`, `"schema_version":2`)},
		{"InternalWhenZero", set(resolved, `"schema_version":1`, `"schema_version":0`)},
		{"InternalWhenNegative", set(resolved, `"schema_version":1`, `"schema_version":-1`)},
		{"InternalWhenNotANumber", set(resolved, `"schema_version":1`, `"schema_version":"1"`)},
		{"InternalWhenOldDataCannotBeUpcast", set(v1, `"data":{`, `"data":[{`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := eventstore.UnmarshalEvent(tt.stored); domain.ErrorCode(err) != domain.EINTERNAL {
				t.Fatalf("UnmarshalEvent(%s) = %v, want INTERNAL_ERROR", tt.stored, err)
			}
		})
	}
	t.Run("UnknownTypeKeepsItsVersion", func(t *testing.T) {
		b := set(set(resolved, `"schema_version":1`, `"schema_version":7`), `"anomaly.resolved"`, `"test.happened"`)
		e, err := eventstore.UnmarshalEvent(b)
		if err != nil || e.SchemaVersion != 7 {
			t.Fatalf("UnmarshalEvent = %+v, %v; want schema version 7 as stored", e, err)
		}
	})
}
