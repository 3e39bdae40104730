package projections_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// snapshotLog appends to store the events of anomalies of two tenants, each
// on its own agent and resolved in each way, and a tenant's policy change.
func snapshotLog(t *testing.T, store eventstore.Store) []*history {
	t.Helper()
	var hs []*history
	for _, tenant := range []string{"acme", "globex"} {
		h := &history{t: t, tenant: tenant, agent: uuid.New()}
		h.report(domain.SeverityCritical)
		h.report(domain.SeverityHigh)
		h.report(domain.SeverityMedium)
		h.report(domain.SeverityLow)
		h.resolve(0, domain.ResolutionMitigated)
		h.resolve(1, domain.ResolutionFalsePositive)
		h.appendTo(store)
		hs = append(hs, h)
	}
	svc := app.NewService(store)
	if _, err := svc.SetPolicy(t.Context(), "globex", domain.Policy{domain.SeverityLow: domain.ContainmentSuspended}, "test"); err != nil {
		t.Fatal(err)
	}
	return hs
}

// fold folds store's whole log into fresh read models and returns them with
// the last event folded.
func fold(t *testing.T, store eventstore.Store, m projections.ReadModels, after projections.EventRef) projections.EventRef {
	t.Helper()
	r := projections.NewRunner("read_model", store, projections.Multi{m.Anomalies, m.Agents, m.Policies}, quiet)
	if after.Position > 0 {
		r.StartAfterEvent(after)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if err := r.CatchUp(wctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return r.LastFolded()
}

// sameModels compares everything the read models answer for the histories'
// tenants and agents.
func sameModels(t *testing.T, got, want projections.ReadModels, hs []*history) {
	t.Helper()
	for _, h := range hs {
		g, _ := got.Anomalies.List(h.tenant, projections.Filter{}, 0, 1000)
		w, _ := want.Anomalies.List(h.tenant, projections.Filter{}, 0, 1000)
		if len(w) == 0 || !reflect.DeepEqual(g, w) {
			t.Errorf("anomalies of %s:\n got %+v\nwant %+v", h.tenant, g, w)
		}
		gc, gok := got.Agents.Get(h.tenant, h.agent)
		wc, wok := want.Agents.Get(h.tenant, h.agent)
		if !wok || gok != wok || !reflect.DeepEqual(gc, wc) {
			t.Errorf("agent of %s:\n got %+v\nwant %+v", h.tenant, gc.Record(), wc.Record())
		}
	}
	if g, w := got.Policies.All(), want.Policies.All(); len(w) == 0 || !reflect.DeepEqual(g, w) {
		t.Errorf("policies: got %v, want %v", g, w)
	}
	if g, w := got.Anomalies.Tenants(), want.Anomalies.Tenants(); !slices.Equal(g, w) {
		t.Errorf("tenants: got %v, want %v", g, w)
	}
}

// loadSnapshot reads the snapshot at path and checks it against store's log,
// as a start does.
func loadSnapshot(t *testing.T, store eventstore.Store, path string) (projections.ReadModels, projections.SnapshotInfo, error) {
	t.Helper()
	s, err := projections.ReadSnapshot(path)
	if err != nil {
		return projections.ReadModels{}, projections.SnapshotInfo{}, err
	}
	if err := s.CheckLog(t.Context(), store); err != nil {
		return projections.ReadModels{}, s.Info, err
	}
	return s.Models, s.Info, nil
}

func TestSnapshotGivesBackTheFoldedReadModels(t *testing.T) {
	store := newStore(t)
	hs := snapshotLog(t, store)
	whole := projections.NewReadModels()
	last := fold(t, store, whole, projections.EventRef{})
	path := filepath.Join(t.TempDir(), "snap", "read-models.snapshot")
	if _, err := projections.SaveSnapshot(context.Background(), path, whole, last, projections.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	// A save killed before its rename left a new file behind: the next save
	// clears it away and replaces the snapshot.
	stale := path + ".123.tmp"
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	saved, err := projections.SaveSnapshot(context.Background(), path, whole, last, projections.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(names) != 1 || names[0] != path {
		t.Errorf("files beside the snapshot: %v, want only the snapshot", names)
	}
	loaded, info, err := loadSnapshot(t, store, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Last != last || info.Anomalies != 8 || info.Agents != 2 || info.Policies != 1 ||
		info.Bytes != saved.Bytes || saved.Anomalies != 8 {
		t.Errorf("loaded %+v, saved %+v; want the last event %+v, 8 anomalies, 2 agents, 1 policy", info, saved, last)
	}
	sameModels(t, loaded, whole, hs)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file: %v, %v; want mode 0600: it holds every tenant's anomalies", st, err)
	}

	// More events: folded after the snapshot, they give what a whole replay does.
	for _, h := range hs {
		n := len(h.events)
		h.resolve(2, domain.ResolutionAgentRevoked)
		h.report(domain.SeverityHigh)
		h.events = h.events[n:]
		h.appendTo(store)
	}
	fold(t, store, loaded, info.Last)
	sameModels(t, loaded, fold2(t, store), hs)
}

func fold2(t *testing.T, store eventstore.Store) projections.ReadModels {
	m := projections.NewReadModels()
	fold(t, store, m, projections.EventRef{})
	return m
}

func TestNoSnapshotIsNotExist(t *testing.T) {
	_, _, err := loadSnapshot(t, newStore(t), filepath.Join(t.TempDir(), "none"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

// reseal recomputes a snapshot's end line for its other lines, as a writer
// would have: what is then refused is refused for the lines, not the sum.
func reseal(t *testing.T, b []byte) []byte {
	t.Helper()
	lines := bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	body := bytes.Join(lines[:len(lines)-1], nil)
	counts := map[string]int{}
	for _, l := range lines[1 : len(lines)-1] {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			counts[k]++
		}
	}
	sum := sha256.Sum256(body)
	end := fmt.Sprintf(`{"end":{"anomalies":%d,"agents":%d,"policies":%d,"sha256":%q}}`+"\n",
		counts["anomaly"], counts["agent"], counts["policy"], hex.EncodeToString(sum[:]))
	return append(body, end...)
}

func TestSnapshotRefused(t *testing.T) {
	store := newStore(t)
	snapshotLog(t, store)
	m := projections.NewReadModels()
	last := fold(t, store, m, projections.EventRef{})
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := projections.SaveSnapshot(context.Background(), good, m, last, projections.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(written, []byte("\n"))
	firstLine := func(prefix string) []byte {
		for _, l := range lines {
			if bytes.HasPrefix(l, []byte(prefix)) {
				return l
			}
		}
		t.Fatalf("no line starts with %s", prefix)
		return nil
	}
	insertAfter := func(b []byte, i int, l []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		return bytes.Join(slices.Insert(ls, i+1, l), nil)
	}

	// Another log, whose event at the snapshot's position is another one.
	other := newStore(t)
	snapshotLog(t, other)

	for _, tc := range []struct {
		name  string
		store eventstore.Store
		edit  func([]byte) []byte
		want  string
	}{
		{"another log", other, nil, "not the log"},
		{"another version", store, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"version":1,`), []byte(`"version":2,`), 1)
		}, "version 2"},
		{"cut short", store, func(b []byte) []byte { return bytes.Join(lines[:len(lines)-2], nil) }, "ends before its end line"},
		{"cut in a line", store, func(b []byte) []byte { return b[:len(b)-len(lines[len(lines)-2])-10] }, "line"},
		{"a changed value", store, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"rate_spike"`), []byte(`"rate_spikE"`), 1)
		}, "checksum"},
		{"more after the end", store, func(b []byte) []byte { return append(slices.Clone(b), '\n') }, "after its end"},
		{"an anomaly twice", store, func(b []byte) []byte {
			// The tenant's first anomaly again after its last (lines 1-4: acme
			// comes first), at a later position, so that only its id repeats.
			again := bytes.Replace(firstLine(`{"anomaly":`), []byte(`"Position":1}`), []byte(fmt.Sprintf(`"Position":%d}`, last.Position)), 1)
			return reseal(t, insertAfter(b, 4, again))
		}, "appears twice"},
		{"an anomaly out of order", store, func(b []byte) []byte {
			return reseal(t, insertAfter(b, 1, firstLine(`{"anomaly":`)))
		}, "out of order"},
		{"an agent twice", store, func(b []byte) []byte {
			return reseal(t, insertAfter(b, 1, firstLine(`{"agent":`)))
		}, "appears twice"},
		{"an unknown field", store, func(b []byte) []byte {
			return reseal(t, bytes.Replace(b, []byte(`{"anomaly":{`), []byte(`{"anomaly":{"Extra":1,`), 1))
		}, "Extra"},
		{"a line of two kinds", store, func(b []byte) []byte {
			return reseal(t, bytes.Replace(b, []byte(`{"policy":{`), []byte(`{"anomaly":{"ID":"`+uuid.NewString()+`"},"policy":{`), 1))
		}, "exactly one"},
		{"sizes out of range", store, func(b []byte) []byte {
			// Hints only: a reader must neither trust nor crash on them.
			b = bytes.Replace(b, []byte(`"agents":2}`), []byte(`"agents":-5}`), 1)
			if !bytes.Contains(b, []byte(`"acme":4`)) || !bytes.Contains(b, []byte(`"agents":-5}`)) {
				t.Fatal("no sizes in the header")
			}
			return bytes.Replace(b, []byte(`"acme":4`), []byte(`"acme":900000000000000000`), 1)
		}, "checksum"},
		{"an anomaly from after its event", store, func(b []byte) []byte {
			return reseal(t, bytes.Replace(b, []byte(`"Position":1}`), []byte(fmt.Sprintf(`"Position":%d}`, last.Position+1)), 1))
		}, "not an anomaly folded before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := slices.Clone(written)
			if tc.edit != nil {
				b = tc.edit(b)
			}
			path := filepath.Join(dir, fmt.Sprintf("%x", sha256.Sum256([]byte(tc.name)))) // not the case's words: the error names the file
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadSnapshot(t, tc.store, path)
			if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	// The unedited file loads: each case fails for its edit alone.
	if _, _, err := loadSnapshot(t, store, good); err != nil {
		t.Fatal(err)
	}
}

// jsonKeys returns the keys of the JSON object v encodes to, nested objects
// as key.subkey.
func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k, v := range m {
		out = append(out, k)
		if sub, ok := v.(map[string]any); ok {
			for s := range sub {
				out = append(out, k+"."+s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// The snapshot's lines are the read models' own types in JSON: a field added,
// renamed or removed changes what an older snapshot means. This test lists
// them; when it fails, bump snapshotVersion in snapshot.go (so that older
// snapshots are not used) and update the lists.
func TestSnapshotLayoutIsPinned(t *testing.T) {
	s := "x"
	at := time.Unix(0, 0)
	id := uuid.New()
	view := projections.AnomalyView{AnomalyState: domain.AnomalyState{
		Description: &s, Assignee: &s, Notes: &s, ResolvedBy: &s, DismissReason: &s, ReferencesAnomalyID: &id, ResolvedAt: &at,
	}}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{view, "AgentID AnomalyType Assignee AutoResponse CreatedAt Description Details DismissReason Hash ID Notes Position ReferencedBy ReferencesAnomalyID Resolution ResolvedAt ResolvedBy Severity Status Tenant UpdatedAt Version"},
		{domain.AgentRecord{}, "holds known revoked updated_at"},
		{map[string]any{"hold": domain.Hold{}}, "hold hold.AnomalyID hold.Containment hold.Reason"},
		{projections.EventRef{}, "category event_id hash position stream_id tenant version"},
	} {
		if got := strings.Join(jsonKeys(t, tc.v), " "); got != tc.want {
			t.Errorf("%T encodes with\n %s\nwas\n %s\nbump snapshotVersion and update this test", tc.v, got, tc.want)
		}
	}
}

// Thousands of lines cross the reader's batches and reuse their buffers: the
// read models read back, twice, must still equal the ones written, in order.
func TestSnapshotOfManyAnomaliesReadsBackInOrder(t *testing.T) {
	m := projections.NewReadModels()
	fold := projections.Multi{m.Anomalies, m.Agents, m.Policies}
	tenants := []string{"acme", "globex", "initech"}
	agents := map[string][]uuid.UUID{}
	var last eventstore.Recorded
	for i := range 3000 {
		h := &history{t: t, tenant: tenants[i%3], agent: uuid.New(), n: i * 3}
		h.report([]domain.Severity{domain.SeverityLow, domain.SeverityMedium, domain.SeverityHigh, domain.SeverityCritical}[i%4])
		if i%3 == 0 {
			h.resolve(0, resolutionsInOrder[i%4])
		}
		for _, e := range h.events {
			last = eventstore.Recorded{Event: e, Position: last.Position + 1}
			if err := fold.Apply(t.Context(), last); err != nil {
				t.Fatal(err)
			}
		}
		agents[h.tenant] = append(agents[h.tenant], h.agent)
	}
	ref := projections.RefOf(last)
	path := filepath.Join(t.TempDir(), "read-models.snapshot")
	if _, err := projections.SaveSnapshot(context.Background(), path, m, ref, projections.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err := projections.ReadSnapshot(path)
		if err != nil {
			t.Fatal(err)
		}
		if s.Info.Anomalies != 3000 || s.Info.Agents != 3000 || s.Info.Last != ref {
			t.Fatalf("read %+v", s.Info)
		}
		for _, tenant := range tenants {
			got, _ := s.Models.Anomalies.List(tenant, projections.Filter{}, 0, 5000)
			want, _ := m.Anomalies.List(tenant, projections.Filter{}, 0, 5000)
			if len(want) != 1000 || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: %d anomalies read back, %d written, or they differ", tenant, len(got), len(want))
			}
			for _, a := range agents[tenant] {
				g, _ := s.Models.Agents.Get(tenant, a)
				w, _ := m.Agents.Get(tenant, a)
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("agent %s of %s: read %+v, written %+v", a, tenant, g.Record(), w.Record())
				}
			}
		}
	}
}

var resolutionsInOrder = []domain.Resolution{
	domain.ResolutionFalsePositive, domain.ResolutionMitigated, domain.ResolutionAcceptedRisk, domain.ResolutionAgentRevoked,
}

// Details kept as a client wrote them, over several lines, still make one
// line of the snapshot each.
func TestSnapshotOfDetailsOverSeveralLines(t *testing.T) {
	m := projections.NewReadModels()
	details := json.RawMessage("{\n  \"rps\": 950,\n  \"paths\": [\"/a\",\n    \"/b\"]\n}")
	a, err := domain.Report(domain.ReportAnomaly{Tenant: "acme", AnomalyID: uuid.New(), AgentID: uuid.New(),
		AnomalyType: "rate_spike", Severity: domain.SeverityHigh, Details: details},
		domain.DefaultPolicy(), domain.Meta{EventID: uuid.New(), At: time.Unix(1, 0), Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	r := eventstore.Recorded{Event: a.Changes()[0], Position: 1}
	if err := (projections.Multi{m.Anomalies, m.Agents, m.Policies}).Apply(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "read-models.snapshot")
	if _, err := projections.SaveSnapshot(context.Background(), path, m, projections.RefOf(r), projections.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := projections.ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Models.Anomalies.Get("acme", a.State().ID)
	var g, w any
	if err := json.Unmarshal(got.Details, &g); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(details, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("details read back %s, written %s", got.Details, details)
	}
}

// A save names its file: the empty path is refused, not taken for the
// working directory.
func TestSaveSnapshotNeedsAFile(t *testing.T) {
	m := projections.NewReadModels()
	last := projections.EventRef{Position: 1, Version: 1}
	if _, err := projections.SaveSnapshot(t.Context(), "", m, last, projections.SaveOptions{}); err == nil || !strings.Contains(err.Error(), "no file") {
		t.Errorf("save to the empty path: %v, want it refused", err)
	}
}
