package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// readSide is everything the API shows of two tenants' anomalies and of the
// given agents: each page of the list, each anomaly and each agent, by what
// was asked. Answers other than 200 are kept by status alone (their bodies
// carry a trace id of their own).
func (s *server) readSide(k keys, agents []string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	keep := func(name string, r response) {
		if r.status != http.StatusOK {
			out[name] = fmt.Sprint(r.status)
			return
		}
		out[name] = r.raw
	}
	for tenant, key := range map[string]string{"acme": k.full, "globex": k.other} {
		cursor := ""
		for page := 0; ; page++ {
			q := "limit=4"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			r := s.do("GET", "/v1/anomalies?"+q, key, tenant, "")
			if r.status != http.StatusOK {
				s.t.Fatalf("list %s: %d %s", tenant, r.status, r.raw)
			}
			keep(fmt.Sprintf("%s list page %d", tenant, page), r)
			for _, it := range r.body["items"].([]any) {
				id := it.(map[string]any)["id"].(string)
				keep(tenant+" anomaly "+id, s.do("GET", "/v1/anomalies/"+id, key, tenant, ""))
			}
			if cursor, _ = r.body["next_cursor"].(string); cursor == "" {
				break
			}
		}
		for _, a := range agents {
			keep(tenant+" agent "+a, s.do("GET", "/v1/agents/"+a, key, tenant, ""))
		}
	}
	return out
}

func sameReadSide(t *testing.T, when string, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: %s:\n got %s\nwant %s", when, name, g, w)
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s shown, and was not before: %s", when, name, g)
		}
	}
}

func (s *server) reportWith(key, tenant, body string) string {
	s.t.Helper()
	r := s.do("POST", "/v1/anomalies", key, tenant, body)
	if r.status != http.StatusCreated {
		s.t.Fatalf("report %s: %d %s", body, r.status, r.raw)
	}
	return r.body["id"].(string)
}

// effectCount returns how many effects the effects stream holds.
func (s *server) effectCount() uint64 {
	s.t.Helper()
	st, err := s.js.Stream(s.t.Context(), natseffects.DefaultStream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.Msgs
}

func TestSnapshotRestartServesWhatTheLogSays(t *testing.T) {
	forEachBackend(t, testSnapshotRestartServesWhatTheLogSays)
}

// A clean shutdown keeps the read models; the next start reads them and
// replays only the events after them. What the API shows must be the same as
// before the restart, and the same as a start that replays the whole log,
// before and after commands made on a read model started from a snapshot; no
// effect is published twice.
func testSnapshotRestartServesWhatTheLogSays(t *testing.T, b backend) {
	// A short duplicate window, waited out before each start, so that only
	// the publisher's checkpoint can keep an effect from being stored twice.
	const window = 200 * time.Millisecond
	dir, flags := newEnv(t, b)
	flags = append(flags, "--effects-duplicate-window", window.String())
	stop := func(s *server) {
		s.stop()
		time.Sleep(2 * window)
	}
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	if got := s.m.ReadModelStartedAfter(); got != 0 {
		t.Fatalf("first start: read model started after position %d, want 0", got)
	}
	a1, a2, a3, a4, g1 := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	agents := []string{a1, a2, a3, a4, g1}
	report := func(agent, severity, extra string) string {
		return s.reportWith(k.full, "acme", fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":%q%s}`, agent, severity, extra))
	}
	anomaly := func(id, cmd string) string { return "/v1/anomalies/" + id + "/" + cmd }

	// Details as a client may send them, over several lines: a snapshot is
	// one line per anomaly whatever its details hold.
	id1 := report(a1, "low", `,"description":"first\nline \"quoted\" ✓","details":{
		"k": "v\u2028",
		"n": [1, 2.5, null],
		"o": {}
	}`)
	id2 := report(a1, "critical", "")
	id3 := report(a2, "high", "")
	s.command(k.full, anomaly(id3, "investigate"), `{"assignee":"alice"}`, http.StatusOK)
	id4 := report(a2, "medium", "")
	s.command(k.full, anomaly(id4, "resolve"), `{"resolution":"mitigated","notes":"contained"}`, http.StatusOK)
	id5 := report(a3, "high", "")
	s.command(k.full, anomaly(id5, "resolve"), `{"resolution":"agent_revoked"}`, http.StatusOK)
	id6 := report(a4, "medium", "")
	s.command(k.full, anomaly(id6, "dismiss"), `{"reason":"duplicate"}`, http.StatusOK)
	id7 := report(a1, "medium", fmt.Sprintf(`,"references_anomaly_id":%q`, id4))
	s.command(k.full, anomaly(id3, "resolve"), `{"resolution":"false_positive","resolved_by":"bob"}`, http.StatusOK)
	s.command(k.full, "/v1/agents/"+a2+"/restore", `{"notes":"patched"}`, http.StatusOK)
	s.command(k.full, "/v1/agents/"+a4+"/revoke", `{"reason":"stolen key"}`, http.StatusOK)
	gid := s.reportWith(k.other, "globex", fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"exfiltration","severity":"critical"}`, g1))
	if r := s.do("POST", anomaly(gid, "resolve"), k.other, "globex", `{"resolution":"accepted_risk"}`); r.status != http.StatusOK {
		t.Fatalf("resolve in globex: %d %s", r.status, r.raw)
	}
	s.settle(k.full)
	before := s.readSide(k, agents)
	effects := s.effectCount()
	head := s.head()
	stop(s)
	if _, err := os.Stat(filepath.Join(dir, "read-models.snapshot")); err != nil {
		t.Fatalf("no snapshot after a clean shutdown: %v", err)
	}

	snapshot := filepath.Join(dir, "read-models.snapshot")
	first, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}

	s = start(t, dir, flags...)
	if got := s.m.ReadModelStartedAfter(); got != head {
		t.Fatalf("restart: read model started after position %d, want the snapshot's %d", got, head)
	}
	_, text := s.get("/metrics")
	if v, ok := metric(text, "anomalyd_read_model_snapshot_position"); !ok || v != float64(head) {
		t.Errorf("anomalyd_read_model_snapshot_position = %v (found %v), want %d", v, ok, head)
	}
	if v, ok := metric(text, "anomalyd_read_model_startup_seconds"); !ok || v <= 0 {
		t.Errorf("anomalyd_read_model_startup_seconds = %v (found %v), want the start-up's time", v, ok)
	}
	sameReadSide(t, "after a restart from the snapshot", s.readSide(k, agents), before)
	// Commands decided on the read model and state the snapshot gave back.
	s.command(k.full, anomaly(id1, "resolve"), `{"resolution":"false_positive"}`, http.StatusOK)
	s.command(k.full, anomaly(id2, "dismiss"), `{"reason":"test fleet"}`, http.StatusOK)
	s.command(k.full, anomaly(id4, "resolve"), `{"resolution":"false_positive"}`, http.StatusConflict)
	s.command(k.full, "/v1/agents/"+a3+"/restore", `{}`, http.StatusConflict)
	report(a1, "high", fmt.Sprintf(`,"references_anomaly_id":%q`, id1))
	s.command(k.full, anomaly(id7, "investigate"), `{"notes":"looking"}`, http.StatusOK)
	s.settle(k.full)
	after := s.readSide(k, agents)
	effectsAfter := s.effectCount()
	if effectsAfter <= effects {
		t.Fatalf("effects: %d before the commands after the restart, %d after", effects, effectsAfter)
	}
	stop(s)

	s = start(t, dir, append(flags, "--snapshot-file", "off")...)
	if got := s.m.ReadModelStartedAfter(); got != 0 {
		t.Fatalf("with snapshots off: read model started after position %d, want 0", got)
	}
	if _, text := s.get("/metrics"); !strings.Contains(text, "\nanomalyd_read_model_snapshot_position 0\n") {
		t.Error("with snapshots off, /metrics does not say the read model started from position 0")
	}
	sameReadSide(t, "after a whole replay", s.readSide(k, agents), after)
	s.settle(k.full)
	if got := s.effectCount(); got != effectsAfter+1 {
		t.Errorf("effects after a whole replay and one more report: %d, want %d (each effect once)", got, effectsAfter+1)
	}
	after = s.readSide(k, agents)
	stop(s)

	// As after a crash, which writes no snapshot: the one before it, and the
	// log after it.
	if err := os.WriteFile(snapshot, first, 0o600); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir, flags...)
	if got := s.m.ReadModelStartedAfter(); got != head {
		t.Fatalf("start on an older snapshot: read model started after position %d, want %d", got, head)
	}
	sameReadSide(t, "after an older snapshot and the log after it", s.readSide(k, agents), after)
	s.settle(k.full)
	if got := s.effectCount(); got != effectsAfter+2 {
		t.Errorf("effects after a start on an older snapshot and one more report: %d, want %d (each effect once)", got, effectsAfter+2)
	}
}

// A snapshot is used only with the log it was taken of: a start on another
// log (here a fresh one, as after the store was wiped or pointed elsewhere)
// replays that log and shows nothing of the snapshot's.
func TestSnapshotOfAnotherLogIsNotUsed(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t, dir)
	s := start(t, dir)
	id := s.report(k.full, uuid.NewString(), "high")
	s.settle(k.full)
	s.stop()
	snapshot := filepath.Join(dir, "read-models.snapshot")

	other := t.TempDir()
	k2 := newKeys(t, other)
	s = start(t, other, "--snapshot-file", snapshot)
	if got := s.m.ReadModelStartedAfter(); got != 0 {
		t.Fatalf("read model started after position %d of another log's snapshot", got)
	}
	if r := s.do("GET", "/v1/anomalies/"+id, k2.full, "acme", ""); r.status != http.StatusNotFound {
		t.Fatalf("an anomaly of the other log: %d %s, want 404", r.status, r.raw)
	}
	if ids, _, _ := s.list(k2.full, "limit=10"); len(ids) != 0 {
		t.Fatalf("list shows %v from the other log", ids)
	}
}

// A damaged snapshot is not used: the read model replays the whole log and
// shows what it says.
func TestDamagedSnapshotIsNotUsed(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t, dir)
	s := start(t, dir)
	agents := []string{uuid.NewString(), uuid.NewString()}
	for _, a := range agents {
		id := s.report(k.full, a, "critical")
		s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"mitigated"}`, http.StatusOK)
	}
	s.settle(k.full)
	before := s.readSide(k, agents)
	s.stop()

	path := filepath.Join(dir, "read-models.snapshot")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A value that still parses: only the checksum tells it from the one
	// written.
	field := []byte(`"AnomalyType":"rate_spike"`)
	if !bytes.Contains(b, field) {
		t.Fatalf("no %s in the snapshot", field)
	}
	b = bytes.Replace(b, field, []byte(`"AnomalyType":"rate_spikE"`), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir)
	if got := s.m.ReadModelStartedAfter(); got != 0 {
		t.Fatalf("read model started after position %d of a damaged snapshot", got)
	}
	sameReadSide(t, "after a damaged snapshot", s.readSide(k, agents), before)
}

// Neither a stop nor a cut taken while running writes a snapshot while an
// effect of its events cannot be stored: it would keep the next start from
// publishing that effect. The snapshot before stays, and the next start
// publishes the effect from the log after it. Either the publisher cannot
// read the effects stream at all (the read model stops on the error), or its
// sends fail and the stop's flush of the effects runs out of time.
func TestNoSnapshotWhileAnEffectIsNotStored(t *testing.T) {
	for _, tc := range []struct {
		name           string
		publisherFirst bool // an effect is stored before the stream goes
	}{
		{"PublisherCannotStart", false},
		{"EffectPending", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := newKeys(t, dir)
			s := start(t, dir)
			s.report(k.full, uuid.NewString(), "high")
			s.settle(k.full)
			head := s.head()
			s.stop()
			snapshot := filepath.Join(dir, "read-models.snapshot")
			first, err := os.ReadFile(snapshot)
			if err != nil {
				t.Fatal(err)
			}

			// Cuts as often as the rule lets: every event, and half the
			// last snapshot's lines (here two or three events).
			s = start(t, dir, "--snapshot-every", "1")
			if tc.publisherFirst {
				s.settle(k.full)
			}
			// Without its stream, no effect can be stored until the next
			// start makes the stream again.
			if err := s.js.DeleteStream(t.Context(), natseffects.DefaultStream); err != nil {
				t.Fatal(err)
			}
			stored := s.head() // the last event whose effect is stored
			agents := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
			for _, agent := range agents {
				id := s.report(k.full, agent, "critical")
				if r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", ""); r.status != http.StatusOK {
					t.Fatalf("the read model does not hold the report: %d", r.status)
				}
				if !tc.publisherFirst {
					break // the read model has stopped on the publisher's error
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s.nc.Close()
			if err := s.m.Close(ctx); err != nil {
				t.Logf("close: %v", err)
			}
			s.m = nil
			if got, err := os.ReadFile(snapshot); !tc.publisherFirst && (err != nil || !bytes.Equal(got, first)) {
				t.Fatalf("the snapshot changed at a stop with an effect not stored (err %v)", err)
			}
			kept, err := projections.ReadSnapshot(snapshot)
			if err != nil || kept.Info.Last.Position < head || kept.Info.Last.Position > stored {
				t.Fatalf("snapshot kept after %+v (err %v), want after a position from %d to %d, whose effects are all stored",
					kept.Info.Last, err, head, stored)
			}
			head = kept.Info.Last.Position

			s = start(t, dir)
			if got := s.m.ReadModelStartedAfter(); got != head {
				t.Fatalf("read model started after position %d, want the last snapshot's %d", got, head)
			}
			for i, agent := range agents {
				if i > 0 && !tc.publisherFirst {
					break
				}
				if got := effectTypes(s.effects(agent, 1)); len(got) != 1 || got[0] != "agent.quarantined" {
					t.Fatalf("effects of a report made while they could not be stored: %v, want agent.quarantined once", got)
				}
			}
		})
	}
}

func TestPeriodicSnapshotBoundsTheReplayAfterACrash(t *testing.T) {
	forEachBackend(t, testPeriodicSnapshotBoundsTheReplayAfterACrash)
}

// While the service runs, it keeps a snapshot every so many events, cut from
// the read models as they fold and written beside them. A start after a crash
// (here the snapshot left as a crash would leave it: the last one written
// while running) reads it, replays only the log after it, and shows what the
// API showed before; no effect is published twice.
func testPeriodicSnapshotBoundsTheReplayAfterACrash(t *testing.T, b backend) {
	const window = 200 * time.Millisecond
	dir, flags := newEnv(t, b)
	flags = append(flags, "--effects-duplicate-window", window.String(), "--snapshot-every", "10")
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	snapshot := filepath.Join(dir, "read-models.snapshot")
	anomaly := func(id, cmd string) string { return "/v1/anomalies/" + id + "/" + cmd }
	var agents, ids []string
	for i := range 12 {
		agent := uuid.NewString()
		agents = append(agents, agent)
		ids = append(ids, s.report(k.full, agent, []string{"critical", "high", "medium", "low"}[i%4]))
	}
	// The cut is written on a goroutine of its own: wait for it.
	var written float64
	for deadline := time.Now().Add(10 * time.Second); written == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot written while running after 12 events with --snapshot-every 10")
		}
		_, text := s.get("/metrics")
		written, _ = metric(text, "anomalyd_read_model_snapshot_written_position")
		if at, ok := metric(text, "anomalyd_read_model_snapshot_written_timestamp_seconds"); written > 0 && (!ok || at < float64(time.Now().Add(-time.Minute).Unix())) {
			t.Errorf("snapshot written at position %v, at unix time %v (found %v), want about now", written, at, ok)
		}
	}
	kept, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	// Commands on anomalies and agents the snapshot holds, after it.
	s.command(k.full, anomaly(ids[0], "resolve"), `{"resolution":"mitigated"}`, http.StatusOK)
	s.command(k.full, anomaly(ids[1], "investigate"), `{"assignee":"alice"}`, http.StatusOK)
	s.command(k.full, anomaly(ids[2], "resolve"), `{"resolution":"false_positive"}`, http.StatusOK)
	s.command(k.full, anomaly(ids[3], "dismiss"), `{"reason":"duplicate"}`, http.StatusOK)
	s.command(k.full, "/v1/agents/"+agents[0]+"/restore", `{"notes":"patched"}`, http.StatusOK)
	s.reportWith(k.full, "acme", fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high","references_anomaly_id":%q}`, agents[4], ids[0]))
	s.settle(k.full)
	before := s.readSide(k, agents)
	effects := s.effectCount()
	s.stop()
	time.Sleep(2 * window)

	if err := os.WriteFile(snapshot, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir, flags...)
	if got := s.m.ReadModelStartedAfter(); got == 0 || float64(got) != written {
		t.Fatalf("after a crash: read model started after position %d, want the snapshot written while running (%v)", got, written)
	}
	sameReadSide(t, "after a start from the snapshot written while running", s.readSide(k, agents), before)
	s.settle(k.full)
	if got := s.effectCount(); got != effects+1 {
		t.Errorf("effects after the start and one more report: %d, want %d (each effect once)", got, effects+1)
	}
}

// With snapshots off, a stop writes none, anywhere: not even a file of its
// own in the working directory, whose files it must not touch either (a save
// to the empty path took the working directory's "..*.tmp" files for its
// own leftovers, and removed them).
func TestNoSnapshotWhenOff(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	mine := filepath.Join(cwd, "..mine.tmp")
	if err := os.WriteFile(mine, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := newKeys(t, dir)
	s := start(t, dir, "--snapshot-file", "off", "--snapshot-every", "1")
	for range 3 {
		s.report(k.full, uuid.NewString(), "high")
	}
	s.settle(k.full)
	s.stop()
	if entries, err := os.ReadDir(cwd); err != nil || len(entries) != 1 || entries[0].Name() != filepath.Base(mine) {
		t.Errorf("the working directory after a stop with snapshots off holds %v (err %v), want only %s", entries, err, filepath.Base(mine))
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.snapshot*")); len(names) != 0 {
		t.Errorf("snapshot files in the data directory with snapshots off: %v", names)
	}
}
