package main_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func (s *server) command(key, path, body string, want int) response {
	s.t.Helper()
	r := s.do("POST", path, key, "acme", body)
	if r.status != want {
		s.t.Fatalf("POST %s %s: %d %s, want %d", path, body, r.status, r.raw, want)
	}
	return r
}

func (s *server) agentStatus(key, agent string) response {
	s.t.Helper()
	r := s.do("GET", "/v1/agents/"+agent, key, "acme", "")
	if r.status != http.StatusOK {
		s.t.Fatalf("GET agent: %d %s", r.status, r.raw)
	}
	return r
}

// settle waits until the effects publisher has been through every event so far:
// it reports an anomaly on a fresh agent and waits for that effect, which comes
// after every earlier one.
func (s *server) settle(key string) {
	s.t.Helper()
	sentinel := uuid.NewString()
	s.report(key, sentinel, "high")
	if got := s.effects(sentinel, 1); len(got) != 1 {
		s.t.Fatalf("sentinel effect missing: %v", effectTypes(got))
	}
}

func TestAgentContainmentEndToEnd(t *testing.T) { forEachBackend(t, testAgentContainmentEndToEnd) }

func testAgentContainmentEndToEnd(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	want := map[string][]string{}
	status := func(agent, st string) {
		t.Helper()
		if r := s.agentStatus(k.full, agent); r.body["status"] != st {
			t.Fatalf("agent %s status = %v, want %s (%s)", agent, r.body["status"], st, r.raw)
		}
	}

	t.Run("FalsePositiveOnOneOfTwoKeepsTheOther", func(t *testing.T) {
		agent := uuid.NewString()
		medium := s.report(k.full, agent, "medium")
		status(agent, "throttled")
		high := s.report(k.full, agent, "high")
		status(agent, "suspended")
		s.command(k.full, "/v1/anomalies/"+high+"/resolve", `{"resolution":"false_positive"}`, 200)
		status(agent, "throttled")
		s.command(k.full, "/v1/anomalies/"+medium+"/resolve", `{"resolution":"accepted_risk"}`, 200)
		status(agent, "active")
		want[agent] = []string{"agent.throttled", "agent.suspended", "agent.throttled", "agent.restored"}
	})

	t.Run("MitigatedHoldsUntilRestore", func(t *testing.T) {
		agent := uuid.NewString()
		id := s.report(k.full, agent, "high")
		r := s.command(k.full, "/v1/anomalies/"+id+"/investigate", `{"assignee":"bob","notes":"looking"}`, 200)
		if r.body["status"] != "investigating" || r.body["assignee"] != "bob" {
			t.Fatalf("investigate: %s", r.raw)
		}
		holds := s.agentStatus(k.full, agent).body["holds"].([]any)
		if len(holds) != 1 || holds[0].(map[string]any)["reason"] != "investigating" {
			t.Fatalf("holds = %v, want one investigating hold", holds)
		}
		s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"mitigated"}`, 200)
		a := s.agentStatus(k.full, agent)
		holds = a.body["holds"].([]any)
		if a.body["status"] != "suspended" || len(holds) != 1 || holds[0].(map[string]any)["reason"] != "mitigated" ||
			holds[0].(map[string]any)["anomaly_id"] != id || holds[0].(map[string]any)["containment"] != "suspended" {
			t.Fatalf("after mitigated: %s", a.raw)
		}
		r = s.command(k.full, "/v1/agents/"+agent+"/restore", `{"notes":"credentials rotated"}`, 200)
		if r.body["status"] != "active" || len(r.body["holds"].([]any)) != 0 {
			t.Fatalf("restore: %s", r.raw)
		}
		r = s.command(k.full, "/v1/agents/"+agent+"/restore", "", 409)
		if r.body["code"] != "CONFLICT" {
			t.Fatalf("second restore: %s", r.raw)
		}
		want[agent] = []string{"agent.suspended", "agent.restored"}
	})

	t.Run("RestoreRefusedWhileOpenAnomalyHolds", func(t *testing.T) {
		agent := uuid.NewString()
		open := s.report(k.full, agent, "medium")
		r := s.command(k.full, "/v1/agents/"+agent+"/restore", "", 409)
		d, _ := r.body["details"].(map[string]any)
		if h, _ := d["holding_anomalies"].([]any); len(h) != 1 || h[0] != open {
			t.Fatalf("restore while held: %s", r.raw)
		}
		status(agent, "throttled")
		want[agent] = []string{"agent.throttled"}
	})

	t.Run("RevocationIsPermanent", func(t *testing.T) {
		agent := uuid.NewString()
		first := s.report(k.full, agent, "high")
		second := s.report(k.full, agent, "medium")
		s.command(k.full, "/v1/anomalies/"+first+"/resolve", `{"resolution":"agent_revoked"}`, 200)
		status(agent, "revoked")
		s.command(k.full, "/v1/anomalies/"+second+"/resolve", `{"resolution":"false_positive"}`, 200)
		status(agent, "revoked")
		r := s.command(k.full, "/v1/agents/"+agent+"/restore", "", 409)
		if d, _ := r.body["details"].(map[string]any); d["status"] != "revoked" {
			t.Fatalf("restore of revoked: %s", r.raw)
		}
		s.command(k.full, "/v1/agents/"+agent+"/revoke", `{"reason":"again"}`, 409)
		want[agent] = []string{"agent.suspended", "agent.revoked"}
	})

	t.Run("ManualRevoke", func(t *testing.T) {
		agent := uuid.NewString()
		s.report(k.full, agent, "low")
		status(agent, "active")
		s.command(k.full, "/v1/agents/"+agent+"/revoke", `{}`, 400)
		r := s.command(k.full, "/v1/agents/"+agent+"/revoke", `{"reason":"exfiltration confirmed"}`, 200)
		if r.body["status"] != "revoked" {
			t.Fatalf("revoke: %s", r.raw)
		}
		want[agent] = []string{"agent.revoked"}
	})

	t.Run("DismissReversesQuarantine", func(t *testing.T) {
		agent := uuid.NewString()
		id := s.report(k.full, agent, "critical")
		status(agent, "quarantined")
		s.command(k.full, "/v1/anomalies/"+id+"/dismiss", `{}`, 400)
		r := s.command(k.full, "/v1/anomalies/"+id+"/dismiss", `{"reason":"test traffic"}`, 200)
		if r.body["status"] != "dismissed" || r.body["dismiss_reason"] != "test traffic" || r.body["resolved_at"] == nil {
			t.Fatalf("dismiss: %s", r.raw)
		}
		status(agent, "active")
		for _, cmd := range []string{"investigate", "dismiss", "resolve"} {
			r := s.command(k.full, "/v1/anomalies/"+id+"/"+cmd, bodyFor(cmd), 409)
			if d, _ := r.body["details"].(map[string]any); d["status"] != "dismissed" {
				t.Fatalf("%s on dismissed: %s", cmd, r.raw)
			}
		}
		want[agent] = []string{"agent.quarantined", "agent.restored"}
	})

	t.Run("UnknownAgent", func(t *testing.T) {
		agent := uuid.NewString()
		if r := s.do("GET", "/v1/agents/"+agent, k.full, "acme", ""); r.status != 404 {
			t.Fatalf("GET unknown agent: %d", r.status)
		}
		s.command(k.full, "/v1/agents/"+agent+"/restore", "", 404)
		if r := s.do("GET", "/v1/agents/not-a-uuid", k.full, "acme", ""); r.status != 400 || r.body["code"] != "INVALID_ID" {
			t.Fatalf("GET bad agent id: %d %s", r.status, r.raw)
		}
		if r := s.do("POST", "/v1/agents/"+agent+"/restore", k.noResolve, "acme", ""); r.status != 403 {
			t.Fatalf("restore without agents:write: %d", r.status)
		}
	})

	t.Run("EffectsExactlyOnceInOrder", func(t *testing.T) {
		s.settle(k.full)
		for agent, w := range want {
			if got := effectTypes(s.effects(agent, len(w))); !slices.Equal(got, w) {
				t.Errorf("agent %s effects = %v, want %v", agent, got, w)
			}
		}
	})
}

func bodyFor(cmd string) string {
	switch cmd {
	case "resolve":
		return `{"resolution":"mitigated"}`
	case "dismiss":
		return `{"reason":"again"}`
	}
	return `{}`
}

func TestAuditTrailAndRevisit(t *testing.T) { forEachBackend(t, testAuditTrailAndRevisit) }

func testAuditTrailAndRevisit(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	agent := uuid.NewString()
	id := s.report(k.full, agent, "high")
	s.command(k.full, "/v1/anomalies/"+id+"/investigate", "", 200)
	s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"mitigated","notes":"patched","resolved_by":"carol"}`, 200)

	t.Run("EventsOldestFirstWithActors", func(t *testing.T) {
		r := s.do("GET", "/v1/anomalies/"+id+"/events", k.full, "acme", "")
		items, _ := r.body["items"].([]any)
		if r.status != 200 || len(items) != 3 {
			t.Fatalf("events: %d %s", r.status, r.raw)
		}
		wantTypes := []string{"anomaly.reported", "anomaly.investigation_started", "anomaly.resolved"}
		for i, it := range items {
			e := it.(map[string]any)
			actor := e["actor"].(map[string]any)
			if e["type"] != wantTypes[i] || e["version"] != float64(i+1) || actor["kind"] != "api_key" || actor["id"] == "" || e["data"] == nil {
				t.Fatalf("event %d = %v", i, e)
			}
		}
		last := items[2].(map[string]any)
		if last["actor"].(map[string]any)["resolved_by"] != "carol" || last["data"].(map[string]any)["notes"] != "patched" {
			t.Fatalf("resolved event = %v, want resolved_by carol beside the key", last)
		}
		if r := s.do("GET", "/v1/anomalies/"+id+"/events", k.other, "globex", ""); r.status != 404 {
			t.Fatalf("events under another tenant: %d", r.status)
		}
	})

	t.Run("RevisitReferencesOriginalWithoutChangingIt", func(t *testing.T) {
		before := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
		r := s.command(k.full, "/v1/anomalies", fmt.Sprintf(
			`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"medium","references_anomaly_id":%q}`, agent, id), 201)
		revisit := r.body["id"].(string)
		if r.body["references_anomaly_id"] != id {
			t.Fatalf("revisit: %s", r.raw)
		}
		after := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
		rb, _ := after.body["referenced_by"].([]any)
		if len(rb) != 1 || rb[0] != revisit {
			t.Fatalf("original referenced_by = %v, want [%s]", after.body["referenced_by"], revisit)
		}
		for _, f := range []string{"status", "resolution", "notes", "resolved_by", "updated_at", "resolved_at"} {
			if before.body[f] != after.body[f] {
				t.Errorf("original %s changed: %v -> %v", f, before.body[f], after.body[f])
			}
		}
		if evs := s.events("acme", id); len(evs) != 3 {
			t.Fatalf("original has %d events, want 3", len(evs))
		}
	})

	t.Run("ReferenceMustExistInTenant", func(t *testing.T) {
		other := s.do("POST", "/v1/anomalies", k.other, "globex",
			fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"low"}`, agent))
		for _, ref := range []string{uuid.NewString(), other.body["id"].(string)} {
			r := s.command(k.full, "/v1/anomalies", fmt.Sprintf(
				`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"low","references_anomaly_id":%q}`, agent, ref), 400)
			if d, _ := r.body["details"].(map[string]any); d["field"] != "references_anomaly_id" {
				t.Fatalf("dangling reference: %s", r.raw)
			}
		}
	})
}

func (s *server) list(key, query string) ([]string, string, response) {
	s.t.Helper()
	r := s.do("GET", "/v1/anomalies?"+query, key, "acme", "")
	if r.status != 200 {
		s.t.Fatalf("list %s: %d %s", query, r.status, r.raw)
	}
	var ids []string
	for _, it := range r.body["items"].([]any) {
		ids = append(ids, it.(map[string]any)["id"].(string))
	}
	next, _ := r.body["next_cursor"].(string)
	return ids, next, r
}

func TestListPagesWithoutGapsOrDuplicatesUnderInserts(t *testing.T) {
	forEachBackend(t, testListPagesWithoutGapsOrDuplicatesUnderInserts)
}

func testListPagesWithoutGapsOrDuplicatesUnderInserts(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	agent := uuid.NewString()
	var initial []string
	for i := range 60 {
		sev := []string{"low", "medium", "high", "critical"}[i%4]
		initial = append(initial, s.report(k.full, agent, sev))
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.do("POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"`+uuid.NewString()+`","anomaly_type":"pattern_deviation","severity":"low"}`)
		}
	}()
	seen := map[string]int{}
	var order []string
	ids, next, _ := s.list(k.full, "limit=7")
	for {
		for _, id := range ids {
			seen[id]++
			order = append(order, id)
		}
		if next == "" {
			break
		}
		ids, next, _ = s.list(k.full, "limit=7&cursor="+url.QueryEscape(next))
	}
	close(stop)
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("anomaly %s listed %d times", id, n)
		}
	}
	for _, id := range initial {
		if seen[id] != 1 {
			t.Errorf("anomaly %s reported before paging is missing", id)
		}
	}
	// Newest first: the initial anomalies appear in reverse order of report.
	var pos []int
	for _, id := range order {
		if i := slices.Index(initial, id); i >= 0 {
			pos = append(pos, i)
		}
	}
	if !slices.IsSortedFunc(pos, func(a, b int) int { return b - a }) {
		t.Errorf("initial anomalies not newest first: %v", pos)
	}

	t.Run("Filters", func(t *testing.T) {
		ids, _, _ := s.list(k.full, "agent_id="+agent+"&severity=critical&limit=200")
		if len(ids) != 15 {
			t.Fatalf("critical on agent: %d, want 15", len(ids))
		}
		s.command(k.full, "/v1/anomalies/"+initial[0]+"/resolve", `{"resolution":"false_positive"}`, 200)
		if ids, _, _ := s.list(k.full, "status=resolved"); len(ids) != 1 || ids[0] != initial[0] {
			t.Fatalf("status=resolved: %v", ids)
		}
		if ids, _, _ := s.list(k.full, "anomaly_type=rate_spike&agent_id="+agent+"&limit=200"); len(ids) != 60 {
			t.Fatalf("anomaly_type: %d", len(ids))
		}
		r := s.do("GET", "/v1/anomalies/"+initial[30], k.full, "acme", "")
		created := r.body["created_at"].(string)
		after, _, _ := s.list(k.full, "agent_id="+agent+"&limit=200&created_after="+url.QueryEscape(created))
		before, _, _ := s.list(k.full, "agent_id="+agent+"&limit=200&created_before="+url.QueryEscape(created))
		if len(after)+len(before) != 59 || slices.Contains(after, initial[30]) || slices.Contains(before, initial[30]) {
			t.Fatalf("created_after %d + created_before %d, want 59 without the pivot", len(after), len(before))
		}
		if r := s.do("GET", "/v1/anomalies?limit=200", k.other, "globex", ""); len(r.body["items"].([]any)) != 0 {
			t.Fatalf("globex sees acme's anomalies: %s", r.raw)
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=201", "limit=x", "status=closed", "severity=severe",
			"agent_id=7", "created_after=yesterday", "cursor=bogus", "sort=asc", "limit=5&limit=6"} {
			if r := s.do("GET", "/v1/anomalies?"+q, k.full, "acme", ""); r.status != 400 || r.body["code"] != "INVALID_INPUT" {
				t.Errorf("%s: %d %s, want 400 INVALID_INPUT", q, r.status, r.raw)
			}
		}
	})
}

func TestIdempotencyKeyReplaysFirstResponse(t *testing.T) {
	forEachBackend(t, testIdempotencyKeyReplaysFirstResponse)
}

func testIdempotencyKeyReplaysFirstResponse(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	agent := uuid.NewString()
	body := fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high"}`, agent)
	post := func(path, key, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", k.full)
		req.Header.Set("X-Tenant-ID", "acme")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		if _, err := fmt.Fprint(&b, readAll(t, res)); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, b.String(), res.Header
	}

	st1, first, h1 := post("/v1/anomalies", "report-1", body)
	if st1 != 201 {
		t.Fatalf("first report: %d %s", st1, first)
	}
	st2, second, h2 := post("/v1/anomalies", "report-1", body)
	if st2 != 201 || second != first || h2.Get("Location") != h1.Get("Location") || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %q, want 201 and the first body byte for byte", st2, second)
	}
	if st, b, _ := post("/v1/anomalies", "report-1", strings.Replace(body, "high", "low", 1)); st != 422 || !strings.Contains(b, "IDEMPOTENCY_MISMATCH") {
		t.Fatalf("same key, other body: %d %s", st, b)
	}
	id := strings.TrimPrefix(h1.Get("Location"), "/v1/anomalies/")
	stR1, res1, _ := post("/v1/anomalies/"+id+"/resolve", "resolve-1", `{"resolution":"false_positive"}`)
	stR2, res2, _ := post("/v1/anomalies/"+id+"/resolve", "resolve-1", `{"resolution":"false_positive"}`)
	if stR1 != 200 || stR2 != 200 || res1 != res2 {
		t.Fatalf("resolve replay: %d/%d, bodies equal %v", stR1, stR2, res1 == res2)
	}
	if st, _, _ := post("/v1/anomalies/"+id+"/resolve", "resolve-2", `{"resolution":"false_positive"}`); st != 409 {
		t.Fatalf("a new key runs the command again: %d, want 409", st)
	}
	if st, _, _ := post("/v1/anomalies", strings.Repeat("k", 256), body); st != 400 {
		t.Fatalf("overlong key: %d, want 400", st)
	}

	s.stop()
	s = start(t, dir, flags...)
	st3, third, _ := post("/v1/anomalies", "report-1", body)
	if st3 != 201 || third != first {
		t.Fatalf("replay after restart: %d %q, want the first body", st3, third)
	}
	stR3, res3, _ := post("/v1/anomalies/"+id+"/resolve", "resolve-1", `{"resolution":"false_positive"}`)
	if stR3 != 200 || res3 != res1 {
		t.Fatalf("resolve replay after restart: %d", stR3)
	}
	ids, _, _ := s.list(k.full, "agent_id="+agent)
	if len(ids) != 1 {
		t.Fatalf("%d anomalies on the agent, want 1: the replays must not report again", len(ids))
	}
}
