package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

func buildCtl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anomalyctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../anomalyctl").CombinedOutput(); err != nil {
		t.Fatalf("go build anomalyctl: %v\n%s", err, out)
	}
	return bin
}

// ctl runs anomalyctl against the test server's log.
func (s *server) ctl(bin string, storeFlags []string, args ...string) (int, string, string) {
	s.t.Helper()
	full := append(append(args, "--nats-url", s.m.NATSURL()), storeFlags...)
	cmd := exec.Command(bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// snapshot is what the API showed for one anomaly or agent right after a step.
type snapshot struct {
	at     time.Time
	path   string // /v1/anomalies/<id> or /v1/agents/<id>
	body   map[string]any
	kind   string // anomaly or agent
	id     string
	key    string
	tenant string
}

func TestAuditReplays(t *testing.T) { forEachBackend(t, testAuditReplays) }

func testAuditReplays(t *testing.T, b backend) {
	ctl := buildCtl(t)
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	storeFlags := slices.Clone(flags) // --store esdb --esdb-url URL, or nothing for jetstream

	var snaps []snapshot
	snap := func(kind, id, key, tenant string) {
		t.Helper()
		path := "/v1/agents/" + id
		if kind == "anomaly" {
			path = "/v1/anomalies/" + id
		}
		r := s.do("GET", path, key, tenant, "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
		}
		snaps = append(snaps, snapshot{at: time.Now().UTC(), path: path, body: r.body, kind: kind, id: id, key: key, tenant: tenant})
		time.Sleep(2 * time.Millisecond) // the next step happens strictly later
	}
	report := func(key, tenant, agent, sev, extra string) string {
		t.Helper()
		r := s.do("POST", "/v1/anomalies", key, tenant, fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":%q%s}`, agent, sev, extra))
		if r.status != 201 {
			t.Fatalf("report: %d %s", r.status, r.raw)
		}
		return r.body["id"].(string)
	}
	post := func(key, tenant, path, body string) {
		t.Helper()
		if r := s.do("POST", path, key, tenant, body); r.status != 200 {
			t.Fatalf("POST %s: %d %s", path, r.status, r.raw)
		}
	}
	agentA, agentB, agentD := uuid.NewString(), uuid.NewString(), uuid.NewString()
	m1 := report(k.full, "acme", agentA, "medium", "")
	snap("anomaly", m1, k.full, "acme")
	snap("agent", agentA, k.full, "acme")
	h1 := report(k.full, "acme", agentA, "high", "")
	snap("agent", agentA, k.full, "acme")
	post(k.full, "acme", "/v1/anomalies/"+h1+"/investigate", `{"assignee":"bob"}`)
	snap("anomaly", h1, k.full, "acme")
	snap("agent", agentA, k.full, "acme")
	post(k.full, "acme", "/v1/anomalies/"+h1+"/resolve", `{"resolution":"mitigated","notes":"patched"}`)
	snap("anomaly", h1, k.full, "acme")
	post(k.full, "acme", "/v1/anomalies/"+m1+"/resolve", `{"resolution":"false_positive"}`)
	snap("anomaly", m1, k.full, "acme")
	snap("agent", agentA, k.full, "acme")
	post(k.full, "acme", "/v1/agents/"+agentA+"/restore", "")
	snap("agent", agentA, k.full, "acme")
	c1 := report(k.full, "acme", agentB, "critical", "")
	snap("agent", agentB, k.full, "acme")
	post(k.full, "acme", "/v1/anomalies/"+c1+"/dismiss", `{"reason":"test traffic"}`)
	snap("anomaly", c1, k.full, "acme")
	snap("agent", agentB, k.full, "acme")
	h2 := report(k.full, "acme", agentB, "high", "")
	post(k.full, "acme", "/v1/anomalies/"+h2+"/resolve", `{"resolution":"accepted_risk"}`)
	snap("anomaly", h2, k.full, "acme")
	g1 := report(k.other, "globex", agentA, "high", "")
	post(k.other, "globex", "/v1/anomalies/"+g1+"/resolve", `{"resolution":"agent_revoked"}`)
	snap("agent", agentA, k.other, "globex")
	l1 := report(k.full, "acme", agentD, "low", "")
	post(k.full, "acme", "/v1/agents/"+agentD+"/revoke", `{"reason":"exfiltration"}`)
	snap("agent", agentD, k.full, "acme")
	report(k.full, "acme", agentA, "medium", `,"references_anomaly_id":"`+h1+`"`)
	snap("anomaly", h1, k.full, "acme")

	// Every event of the log, straight from the store, as the oracle.
	var all []eventstore.Recorded
	for _, st := range []domain.StreamID{
		domain.AgentStream("acme", uuid.MustParse(agentA)), domain.AgentStream("acme", uuid.MustParse(agentD)),
	} {
		recs, err := s.store.ReadStream(context.Background(), st, 0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	for tenant, ids := range map[string][]string{"acme": {m1, h1, c1, h2, l1}, "globex": {g1}} {
		for _, id := range ids {
			recs, err := s.store.ReadStream(context.Background(), domain.AnomalyStream(tenant, uuid.MustParse(id)), 0)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, recs...)
		}
	}
	slices.SortFunc(all, func(a, b eventstore.Recorded) int { return int(a.Position) - int(b.Position) })
	ref := snaps[len(snaps)-1].body["referenced_by"].([]any)[0].(string)
	refRecs, _ := s.store.ReadStream(context.Background(), domain.AnomalyStream("acme", uuid.MustParse(ref)), 0)
	all = append(all, refRecs...)
	expect := func(keep func(eventstore.Recorded) bool) []string {
		var out []string
		for _, r := range all {
			if keep(r) {
				out = append(out, r.ID.String())
			}
		}
		return out
	}

	t.Run("ReplayFilters", func(t *testing.T) {
		mid, end := snaps[3].at, snaps[10].at
		cases := []struct {
			args []string
			keep func(eventstore.Recorded) bool
		}{
			{nil, func(eventstore.Recorded) bool { return true }},
			{[]string{"--tenant", "globex"}, func(r eventstore.Recorded) bool { return r.TenantID == "globex" }},
			{[]string{"--tenant", "acme", "--anomaly", h1}, func(r eventstore.Recorded) bool { return r.Stream.ID == h1 }},
			{[]string{"--agent", agentA}, func(r eventstore.Recorded) bool { a, ok := domain.AgentOf(r.Event); return ok && a.String() == agentA }},
			{[]string{"--tenant", "acme", "--agent", agentA}, func(r eventstore.Recorded) bool {
				a, ok := domain.AgentOf(r.Event)
				return ok && a.String() == agentA && r.TenantID == "acme"
			}},
			{[]string{"--type", "anomaly.resolved,agent.revoked"}, func(r eventstore.Recorded) bool {
				return r.Type == domain.EventAnomalyResolved || r.Type == domain.EventAgentRevoked
			}},
			{[]string{"--since", mid.Format(time.RFC3339Nano), "--until", end.Format(time.RFC3339Nano)}, func(r eventstore.Recorded) bool {
				return !r.OccurredAt.Before(mid) && !r.OccurredAt.After(end)
			}},
		}
		for _, c := range cases {
			code, out, errOut := s.ctl(ctl, storeFlags, append([]string{"replay"}, c.args...)...)
			if code != 0 {
				t.Fatalf("replay %v: exit %d: %s", c.args, code, errOut)
			}
			var got []string
			var lastPos float64
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var line map[string]any
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("replay %v: line is not JSON: %q", c.args, sc.Text())
				}
				if pos := line["position"].(float64); pos <= lastPos {
					t.Fatalf("replay %v: not oldest first", c.args)
				} else {
					lastPos = pos
				}
				got = append(got, line["event_id"].(string))
			}
			want := expect(c.keep)
			slices.Sort(got)
			slices.Sort(want)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("replay %v: %d events, want %d", c.args, len(got), len(want))
			}
		}
	})

	t.Run("StateAtEachStepIsWhatTheAPIShowed", func(t *testing.T) {
		for i, sn := range snaps {
			tenant, key := sn.tenant, sn.key
			code, out, errOut := s.ctl(ctl, storeFlags, "state", "--at", sn.at.Format(time.RFC3339Nano), "--tenant", tenant, "--"+sn.kind, sn.id)
			if code != 0 {
				t.Fatalf("step %d: state: exit %d: %s", i, code, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, sn.body) {
				t.Errorf("step %d %s: state --at says\n%s\nthe API showed\n%s", i, sn.path, jsonText(got), jsonText(sn.body))
			}
			r := s.do("GET", sn.path+"?as_of="+url.QueryEscape(sn.at.Format(time.RFC3339Nano)), key, tenant, "")
			if r.status != 200 || !reflect.DeepEqual(r.body, sn.body) {
				t.Errorf("step %d %s: as_of answered %d\n%s\nthe API showed\n%s", i, sn.path, r.status, r.raw, jsonText(sn.body))
			}
		}
		before := snaps[0].at.Add(-time.Hour).Format(time.RFC3339Nano)
		if r := s.do("GET", "/v1/anomalies/"+m1+"?as_of="+url.QueryEscape(before), k.full, "acme", ""); r.status != 404 {
			t.Errorf("as_of before the anomaly existed: %d, want 404", r.status)
		}
		if r := s.do("GET", "/v1/anomalies/"+m1+"?as_of=yesterday", k.full, "acme", ""); r.status != 400 {
			t.Errorf("malformed as_of: %d, want 400", r.status)
		}
	})

	t.Run("RebuildMatchesThenFindsAnAlteredReadModel", func(t *testing.T) {
		if code, out, errOut := s.ctl(ctl, storeFlags, "rebuild"); code != 0 || !strings.Contains(out, "ok:") {
			t.Fatalf("offline rebuild: exit %d\n%s%s", code, out, errOut)
		}
		api := []string{"rebuild", "--api", s.base, "--key", k.full, "--tenant", "acme"}
		if code, out, errOut := s.ctl(ctl, storeFlags, api...); code != 0 || !strings.Contains(out, "ok:") {
			t.Fatalf("rebuild against the service: exit %d\n%s%s", code, out, errOut)
		}
		// Alter the served read model behind the log's back: L1 resolved in
		// memory only.
		recs, err := s.store.ReadStream(context.Background(), domain.AnomalyStream("acme", uuid.MustParse(l1)), 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := domain.LoadAnomaly([]domain.Event{recs[0].Event})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive},
			domain.Meta{EventID: uuid.New(), At: time.Now(), Actor: domain.Actor{ID: "intruder", Kind: domain.ActorSystem}}); err != nil {
			t.Fatal(err)
		}
		forged := eventstore.Recorded{Event: a.Changes()[0], Position: 1 << 40}
		if err := s.m.Anomalies.Apply(context.Background(), forged); err != nil {
			t.Fatal(err)
		}
		code, out, _ := s.ctl(ctl, storeFlags, api...)
		if code == 0 || !strings.Contains(out, "anomaly "+l1+" field status") {
			t.Fatalf("altered read model: exit %d\n%s", code, out)
		}
	})
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
