package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	main "github.com/anomalyd/anomalyd/cmd/anomalyd"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/esdb/esdbtest"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// server is one running anomalyd, booted with the same wiring as the binary,
// and a NATS connection of a downstream subscriber.
type server struct {
	t     *testing.T
	m     *main.Main
	base  string
	nc    *nats.Conn
	js    njs.JetStream
	store eventstore.Store
}

// keys are the credentials the tests use, created in the keys file once per data dir.
type keys struct {
	full, noResolve, readOnly, other string
}

func newKeys(t *testing.T, dataDir string) keys {
	t.Helper()
	path := dataDir + "/keys.json"
	create := func(tenant string, scopes ...string) string {
		_, secret, err := auth.CreateKey(path, tenant, "test", scopes, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	return keys{
		full:      create("acme", domain.AllScopes...),
		noResolve: create("acme", domain.ScopeAnomaliesRead, domain.ScopeAnomaliesWrite),
		readOnly:  create("acme", domain.ScopeAnomaliesRead),
		other:     create("globex", domain.AllScopes...),
	}
}

func start(t *testing.T, dataDir string, flags ...string) *server {
	t.Helper()
	cfg, err := main.ParseConfig(append([]string{
		"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--log-level", "warn",
	}, flags...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := main.NewMain(cfg, logger)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Open(ctx); err != nil {
		m.Close(ctx)
		t.Fatalf("open: %v", err)
	}
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store := testStore(t, ctx, js, flags)
	s := &server{t: t, m: m, base: "http://" + m.HTTPAddr(), nc: nc, js: js, store: store}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	if s.m == nil {
		return
	}
	s.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.m.Close(ctx); err != nil {
		s.t.Errorf("close: %v", err)
	}
	s.m = nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// send sends a request with the credential headers cred; tenant "" sends no
// X-Tenant-ID and body "" no body.
func (s *server) send(method, path string, cred http.Header, tenant, body string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range cred {
		req.Header[k] = v
	}
	if tenant != "" {
		req.Header.Set("X-Tenant-ID", tenant)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	return response{status: res.StatusCode, header: res.Header, raw: readAll(s.t, res)}
}

// do sends a request with an API key ("" sends no credential) and decodes the
// JSON object it answers.
func (s *server) do(method, path, key, tenant, body string) response {
	s.t.Helper()
	cred := http.Header{}
	if key != "" {
		cred.Set("X-API-Key", key)
	}
	out := s.send(method, path, cred, tenant, body)
	if err := json.Unmarshal([]byte(out.raw), &out.body); err != nil {
		s.t.Fatalf("%s %s: body is not a JSON object: %q", method, path, out.raw)
	}
	return out
}

func (s *server) report(key, agent, severity string) string {
	s.t.Helper()
	r := s.do("POST", "/v1/anomalies", key, "acme",
		fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":%q,"details":{"rps":950}}`, agent, severity))
	if r.status != http.StatusCreated {
		s.t.Fatalf("report: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string)
}

// events returns the events of one anomaly's stream, straight from the store.
func (s *server) events(tenant, id string) []domain.Event {
	s.t.Helper()
	recs, err := s.store.ReadStream(context.Background(), domain.AnomalyStream(tenant, uuid.MustParse(id)), 0)
	if err != nil {
		s.t.Fatal(err)
	}
	out := make([]domain.Event, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}

func (s *server) head() uint64 {
	s.t.Helper()
	h, err := s.store.Head(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

// effects reads every effect stored for an agent, as a subscriber that was
// offline would, waiting until at least want have arrived.
func (s *server) effects(agent string, want int) []projections.CloudEvent {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []projections.CloudEvent
	for {
		out = out[:0]
		cons, err := s.js.OrderedConsumer(ctx, natseffects.DefaultStream, njs.OrderedConsumerConfig{
			FilterSubjects: []string{projections.EffectSubject("acme", uuid.MustParse(agent))},
		})
		if err != nil {
			s.t.Fatal(err)
		}
		for {
			batch, err := cons.FetchNoWait(100)
			if err != nil {
				s.t.Fatal(err)
			}
			n := 0
			for msg := range batch.Messages() {
				n++
				var ce projections.CloudEvent
				if err := json.Unmarshal(msg.Data(), &ce); err != nil {
					s.t.Fatalf("effect is not a CloudEvent: %v", err)
				}
				if msg.Headers().Get("Nats-Msg-Id") != ce.ID {
					s.t.Fatalf("Nats-Msg-Id %q != CloudEvent id %q", msg.Headers().Get("Nats-Msg-Id"), ce.ID)
				}
				out = append(out, ce)
			}
			if n == 0 {
				break
			}
		}
		if len(out) >= want || ctx.Err() != nil {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func effectTypes(ces []projections.CloudEvent) []string {
	var out []string
	for _, ce := range ces {
		out = append(out, ce.Type)
	}
	return out
}

func TestResolveEndToEnd(t *testing.T) { forEachBackend(t, testResolveEndToEnd) }

func testResolveEndToEnd(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	agent := uuid.NewString()

	// A live subscriber, as agent control would run it.
	live := make(chan *nats.Msg, 16)
	sub, err := s.nc.ChanSubscribe("maip.effects.acme.agent."+agent, live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s.nc.Flush()

	id := s.report(k.full, agent, "high")

	t.Run("ResolvedFalsePositiveWithFullResponse", func(t *testing.T) {
		r := s.do("POST", "/v1/anomalies/"+id+"/resolve", k.full, "acme",
			`{"resolution":"false_positive","notes":"detector misfire","resolved_by":"alice@example.com"}`)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("resolve: %d %s", r.status, r.raw)
		}
		want := map[string]any{
			"anomaly_id": id, "id": id, "agent_id": agent, "anomaly_type": "rate_spike", "severity": "high",
			"status": "resolved", "resolution": "false_positive", "notes": "detector misfire",
			"resolved_by": "alice@example.com", "auto_response": "suspended",
		}
		for f, v := range want {
			if r.body[f] != v {
				t.Errorf("%s = %v, want %v", f, r.body[f], v)
			}
		}
		if d, ok := r.body["details"].(map[string]any); !ok || d["rps"] != float64(950) {
			t.Errorf("details = %v", r.body["details"])
		}
		for _, f := range []string{"created_at", "resolved_at", "updated_at"} {
			ts, _ := r.body[f].(string)
			if p, err := time.Parse(time.RFC3339Nano, ts); err != nil || p.Location() != time.UTC || !strings.HasSuffix(ts, "Z") {
				t.Errorf("%s = %q, want an RFC 3339 UTC time", f, ts)
			}
		}
		for _, f := range []string{"description", "assignee", "dismiss_reason", "references_anomaly_id"} {
			if v, ok := r.body[f]; !ok || v != nil {
				t.Errorf("%s = %v (present %v), want null", f, v, ok)
			}
		}
		if rb, ok := r.body["referenced_by"].([]any); !ok || len(rb) != 0 {
			t.Errorf("referenced_by = %v, want []", r.body["referenced_by"])
		}
		evs := s.events("acme", id)
		if len(evs) != 2 || evs[1].Type != domain.EventAnomalyResolved || evs[1].Actor.Kind != domain.ActorAPIKey || evs[1].Actor.ID == "" {
			t.Fatalf("stored events = %+v, want reported then resolved with the key as actor", evs)
		}
	})

	t.Run("ReadBackResolved", func(t *testing.T) {
		r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
		if r.status != http.StatusOK || r.body["status"] != "resolved" || r.body["resolution"] != "false_positive" {
			t.Fatalf("get: %d %s", r.status, r.raw)
		}
	})

	t.Run("RestoreEffectArrivesOnNATS", func(t *testing.T) {
		var got []projections.CloudEvent
		for len(got) < 2 {
			select {
			case m := <-live:
				var ce projections.CloudEvent
				if err := json.Unmarshal(m.Data, &ce); err != nil {
					t.Fatal(err)
				}
				got = append(got, ce)
			case <-time.After(10 * time.Second):
				t.Fatalf("effects seen live: %v, want agent.suspended then agent.restored", effectTypes(got))
			}
		}
		if got[0].Type != "agent.suspended" || got[1].Type != "agent.restored" {
			t.Fatalf("effects = %v, want agent.suspended, agent.restored", effectTypes(got))
		}
		d := got[1].Data
		if got[1].SpecVersion != "1.0" || d.PreviousStatus != "suspended" || d.Status != "active" ||
			d.Resolution == nil || *d.Resolution != "false_positive" || d.AnomalyID == nil || d.AnomalyID.String() != id ||
			d.TenantID != "acme" || d.AgentID.String() != agent {
			t.Fatalf("restore effect = %+v", got[1])
		}
		if evs := s.events("acme", id); d.CauseEventID != evs[1].ID || got[1].ID != projections.EffectID(evs[1].ID).String() {
			t.Fatalf("effect %s caused by %s, want derived from the resolved event %s", got[1].ID, d.CauseEventID, evs[1].ID)
		}
	})

	before := s.head()
	failures := []struct {
		name, method, path, key, tenant, body string
		status                                int
		code                                  string
	}{
		{"ConflictOnSecondResolve", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"resolution":"mitigated"}`, 409, "CONFLICT"},
		{"NotFoundUnderAnotherTenant", "GET", "/v1/anomalies/" + id, k.other, "globex", "", 404, "NOT_FOUND"},
		{"NotFoundResolveUnderAnotherTenant", "POST", "/v1/anomalies/" + id + "/resolve", k.other, "globex", `{"resolution":"mitigated"}`, 404, "NOT_FOUND"},
		{"UnauthorizedWithoutCredential", "POST", "/v1/anomalies/" + id + "/resolve", "", "acme", `{"resolution":"mitigated"}`, 401, "UNAUTHORIZED"},
		{"UnauthorizedWithUnknownKey", "GET", "/v1/anomalies/" + id, "anm_not-a-key", "acme", "", 401, "UNAUTHORIZED"},
		{"ForbiddenWithoutResolveScope", "POST", "/v1/anomalies/" + id + "/resolve", k.noResolve, "acme", `{"resolution":"mitigated"}`, 403, "FORBIDDEN"},
		{"ForbiddenReportWithReadOnlyKey", "POST", "/v1/anomalies", k.readOnly, "acme", `{"agent_id":"` + agent + `","anomaly_type":"rate_spike","severity":"low"}`, 403, "FORBIDDEN"},
		{"ForbiddenWithKeyOfAnotherTenant", "GET", "/v1/anomalies/" + id, k.other, "acme", "", 403, "FORBIDDEN"},
		{"InvalidWithoutTenantHeader", "GET", "/v1/anomalies/" + id, k.full, "", "", 400, "INVALID_INPUT"},
		{"InvalidWithMalformedTenant", "GET", "/v1/anomalies/" + id, k.full, "ac.me", "", 400, "INVALID_INPUT"},
		{"InvalidResolutionOops", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"resolution":"oops"}`, 400, "INVALID_INPUT"},
		{"InvalidIDNotUUID", "POST", "/v1/anomalies/not-a-uuid/resolve", k.full, "acme", `{"resolution":"mitigated"}`, 400, "INVALID_ID"},
		{"InvalidIDOnGet", "GET", "/v1/anomalies/12345", k.full, "acme", "", 400, "INVALID_ID"},
		{"InvalidMalformedJSON", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"resolution":`, 400, "INVALID_INPUT"},
		{"InvalidUnknownField", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"resolution":"mitigated","severity":"low"}`, 400, "INVALID_INPUT"},
		{"InvalidMissingResolution", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"notes":"x"}`, 400, "INVALID_INPUT"},
		{"InvalidTrailingData", "POST", "/v1/anomalies/" + id + "/resolve", k.full, "acme", `{"resolution":"mitigated"} {}`, 400, "INVALID_INPUT"},
		{"InvalidReportSeverity", "POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"` + agent + `","anomaly_type":"rate_spike","severity":"severe"}`, 400, "INVALID_INPUT"},
		{"InvalidReportAgent", "POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"agent-7","anomaly_type":"rate_spike","severity":"low"}`, 400, "INVALID_INPUT"},
		{"InvalidReportMissingType", "POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"` + agent + `","severity":"low"}`, 400, "INVALID_INPUT"},
		{"InvalidReportDetailsArray", "POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"` + agent + `","anomaly_type":"rate_spike","severity":"low","details":[1]}`, 400, "INVALID_INPUT"},
		{"NotFoundUnknownAnomaly", "POST", "/v1/anomalies/" + uuid.NewString() + "/resolve", k.full, "acme", `{"resolution":"mitigated"}`, 404, "NOT_FOUND"},
		{"PayloadTooLarge", "POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"` + agent + `","anomaly_type":"rate_spike","severity":"low","description":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "INVALID_INPUT"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			r := s.do(f.method, f.path, f.key, f.tenant, f.body)
			if r.status != f.status || r.body["code"] != f.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, f.status, f.code)
			}
			if msg, _ := r.body["message"].(string); msg == "" {
				t.Errorf("error without a message: %s", r.raw)
			}
			if tid, _ := r.body["trace_id"].(string); tid == "" || tid != r.header.Get("X-Trace-Id") {
				t.Errorf("trace_id %q, X-Trace-Id %q", tid, r.header.Get("X-Trace-Id"))
			}
			if _, ok := r.body["details"].(map[string]any); !ok {
				t.Errorf("details is not an object: %s", r.raw)
			}
		})
	}
	t.Run("UnsupportedMediaTypeWithoutJSONContentType", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.base+"/v1/anomalies/"+id+"/resolve", strings.NewReader(`{"resolution":"mitigated"}`))
		req.Header.Set("X-API-Key", k.full)
		req.Header.Set("X-Tenant-ID", "acme")
		req.Header.Set("Content-Type", "text/plain")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status = %d, want 415", res.StatusCode)
		}
	})
	t.Run("ConflictNamesCurrentStatus", func(t *testing.T) {
		r := s.do("POST", "/v1/anomalies/"+id+"/resolve", k.full, "acme", `{"resolution":"agent_revoked"}`)
		if d, _ := r.body["details"].(map[string]any); r.status != 409 || d["status"] != "resolved" {
			t.Fatalf("got %d %s, want 409 with status resolved in details", r.status, r.raw)
		}
	})
	t.Run("FailuresChangeNothing", func(t *testing.T) {
		if after := s.head(); after != before {
			t.Fatalf("store head moved from %d to %d during refused requests", before, after)
		}
		if evs := s.events("acme", id); len(evs) != 2 {
			t.Fatalf("anomaly has %d events, want 2", len(evs))
		}
		if evs := s.events("globex", id); len(evs) != 0 {
			t.Fatalf("another tenant's stream got %d events", len(evs))
		}
		r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
		if r.body["resolution"] != "false_positive" || r.body["notes"] != "detector misfire" {
			t.Fatalf("anomaly changed: %s", r.raw)
		}
	})
}

func TestConcurrentResolvesHaveOneWinner(t *testing.T) {
	forEachBackend(t, testConcurrentResolvesHaveOneWinner)
}

func testConcurrentResolvesHaveOneWinner(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	id := s.report(k.full, uuid.NewString(), "critical")

	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			res := []string{"false_positive", "mitigated", "accepted_risk", "agent_revoked"}[i%4]
			req, _ := http.NewRequest("POST", s.base+"/v1/anomalies/"+id+"/resolve",
				bytes.NewBufferString(`{"resolution":"`+res+`"}`))
			req.Header.Set("X-API-Key", k.full)
			req.Header.Set("X-Tenant-ID", "acme")
			req.Header.Set("Content-Type", "application/json")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			statuses[i] = r.StatusCode
		}()
	}
	close(startGun)
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[200] != 1 || count[409] != n-1 {
		t.Fatalf("statuses = %v, want exactly one 200 and %d 409", count, n-1)
	}
	resolved := 0
	for _, e := range s.events("acme", id) {
		if e.Type == domain.EventAnomalyResolved {
			resolved++
		}
	}
	if resolved != 1 {
		t.Fatalf("store holds %d resolved events, want 1", resolved)
	}
}

func TestRestartKeepsStateAndPublishesNoEffectTwice(t *testing.T) {
	forEachBackend(t, testRestartKeepsStateAndPublishesNoEffectTwice)
}

func testRestartKeepsStateAndPublishesNoEffectTwice(t *testing.T, b backend) {
	// A short duplicate window, waited out before the restart, so that only the
	// publisher's checkpoint can keep an effect from being stored twice.
	const window = 200 * time.Millisecond
	dir, flags := newEnv(t, b)
	flags = append(flags, "--effects-duplicate-window", window.String())
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	agent := uuid.NewString()
	id := s.report(k.full, agent, "medium")
	if r := s.do("POST", "/v1/anomalies/"+id+"/resolve", k.full, "acme", `{"resolution":"accepted_risk"}`); r.status != 200 {
		t.Fatalf("resolve: %d %s", r.status, r.raw)
	}
	if got := effectTypes(s.effects(agent, 2)); len(got) != 2 {
		t.Fatalf("effects before restart = %v", got)
	}
	s.stop()
	time.Sleep(2 * window)

	s = start(t, dir, flags...)
	r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
	if r.status != 200 || r.body["status"] != "resolved" || r.body["resolution"] != "accepted_risk" {
		t.Fatalf("after restart: %d %s", r.status, r.raw)
	}
	if r := s.do("POST", "/v1/anomalies/"+id+"/resolve", k.full, "acme", `{"resolution":"mitigated"}`); r.status != 409 {
		t.Fatalf("resolve after restart: %d, want 409", r.status)
	}
	// Effects are published in log order: once the effect of a new event has
	// arrived, the restarted publisher has been through every older event.
	sentinel := uuid.NewString()
	s.report(k.full, sentinel, "high")
	if got := s.effects(sentinel, 1); len(got) != 1 {
		t.Fatalf("sentinel effects = %v", effectTypes(got))
	}
	got := effectTypes(s.effects(agent, 2))
	if len(got) != 2 || got[0] != "agent.throttled" || got[1] != "agent.restored" {
		t.Fatalf("effects after restart = %v, want each of agent.throttled, agent.restored once", got)
	}
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// backend names an event-store backend the end-to-end tests run on.
type backend string

var backends = []backend{"jetstream", "esdb"}

// forEachBackend runs an end-to-end test once per event-store backend.
func forEachBackend(t *testing.T, f func(*testing.T, backend)) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) { f(t, b) })
	}
}

// newEnv returns a data directory and the flags that select backend b; for
// esdb it starts an EventStoreDB protocol server on loopback that outlives
// restarts of anomalyd within the test.
func newEnv(t *testing.T, b backend) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	if b != "esdb" {
		return dir, nil
	}
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return dir, []string{"--store", "esdb", "--esdb-url", srv.URL()}
}

// testStore opens, for the test's own reads, the store that flags select.
func testStore(t *testing.T, ctx context.Context, js njs.JetStream, flags []string) eventstore.Store {
	t.Helper()
	if i := slices.Index(flags, "--esdb-url"); i >= 0 {
		s, err := esdb.Open(ctx, esdb.Config{URL: flags[i+1]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	s, err := jetstream.New(ctx, js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
