package http

// The fuzz targets of this file drive the real router, middleware and body
// decoders in memory (httptest) and predict every answer from the contract in
// DESIGN.md. Behind the Commands and read-model ports sit fakes, because these
// are unit tests of the HTTP layer; the fakes decide with the real domain
// (domain.Report, Anomaly.Resolve, Agent.Restore, ...), so the status a target
// predicts is the one a real command service would cause.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

const (
	fuzzSecret = "fuzz-secret"
	fuzzTenant = "acme"
)

var (
	// fuzzAnomalyID is the one anomaly of tenant acme the command targets address.
	fuzzAnomalyID = uuid.MustParse("6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7")
	// fuzzAgentID is the agent of fuzzAnomalyID and the agent the agent targets address.
	fuzzAgentID = uuid.MustParse("0b6e8f3a-1c2d-4e5f-9a6b-7c8d9e0f1a2b")
	fuzzActor   = domain.Actor{ID: "key_fuzz", Kind: domain.ActorAPIKey}
	fuzzAt      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// fuzzBackend is an in-memory stand-in for the command services and the read
// models of tenant acme: a log of anomaly events per anomaly and the events that
// concern fuzzAgentID, folded on every read.
type fuzzBackend struct {
	anomalies   map[uuid.UUID][]domain.Event
	agentLog    []domain.Event // every event that concerns fuzzAgentID, in order
	agentStream []domain.Event // the agent's own stream: restores and revocations
	pos         uint64
}

// Anomaly states the command targets choose from; the fuzzer picks one with a byte.
var fuzzAnomalyStatuses = []domain.Status{
	domain.StatusOpen, domain.StatusInvestigating, domain.StatusResolved, domain.StatusDismissed,
}

// Agent containments the agent targets choose from.
const (
	fuzzAgentHeldOpen  = iota // a high anomaly is open: restore is 409, revoke works
	fuzzAgentMitigated        // the anomaly was resolved mitigated: both work
	fuzzAgentRevoked          // resolved agent_revoked: both are 409
	fuzzAgentUnknown          // no anomaly of the agent: both are 404
	fuzzAgentStates
)

func fuzzMeta(n int) domain.Meta {
	return domain.Meta{EventID: uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(n)}), At: fuzzAt.Add(time.Duration(n) * time.Minute), Actor: fuzzActor}
}

// fuzzReported returns a new open high-severity anomaly of fuzzAgentID.
func fuzzReported(tb testing.TB, id uuid.UUID, m domain.Meta) *domain.Anomaly {
	tb.Helper()
	a, err := domain.Report(domain.ReportAnomaly{Tenant: fuzzTenant, AnomalyID: id, AgentID: fuzzAgentID,
		AnomalyType: "rate_spike", Severity: domain.SeverityHigh}, domain.DefaultPolicy(), m)
	if err != nil {
		tb.Fatalf("report a fixture anomaly: %v", err)
	}
	return a
}

// fuzzHarness is the server a fuzz target sends every input to. It is built
// once per fuzzing process, because building the router compiles its route
// patterns, which would take most of each input's time; reset gives every input
// fresh state.
type fuzzHarness struct {
	srv     *Server
	backend *fuzzBackend
	idem    *fuzzIdempotency
	logs    bytes.Buffer // the server's warnings and errors, shown on a failure

	anomalies [4][]domain.Event               // fuzzAnomalyID in each of fuzzAnomalyStatuses
	agents    [fuzzAgentStates][]domain.Event // what concerns fuzzAgentID in each agent state
}

func newFuzzHarness(tb testing.TB) *fuzzHarness {
	tb.Helper()
	h := &fuzzHarness{backend: &fuzzBackend{}, idem: &fuzzIdempotency{}}
	for i, status := range fuzzAnomalyStatuses {
		a := fuzzReported(tb, fuzzAnomalyID, fuzzMeta(1))
		var err error
		switch status {
		case domain.StatusInvestigating:
			err = a.Investigate(domain.InvestigateAnomaly{}, fuzzMeta(2))
		case domain.StatusResolved:
			err = a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated}, fuzzMeta(2))
		case domain.StatusDismissed:
			err = a.Dismiss(domain.DismissAnomaly{Reason: "duplicate"}, fuzzMeta(2))
		}
		if err != nil {
			tb.Fatalf("build the fixture anomaly: %v", err)
		}
		h.anomalies[i] = a.Changes()
	}
	// The agent's containment comes from an anomaly of its own, so that the
	// anomaly and the agent fixtures vary independently.
	for state := range fuzzAgentStates {
		held := fuzzReported(tb, uuid.NewSHA1(uuid.NameSpaceOID, []byte("held")), fuzzMeta(11))
		var err error
		switch state {
		case fuzzAgentMitigated:
			err = held.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated}, fuzzMeta(12))
		case fuzzAgentRevoked:
			err = held.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionAgentRevoked}, fuzzMeta(12))
		}
		if err != nil {
			tb.Fatalf("build the fixture agent: %v", err)
		}
		if state != fuzzAgentUnknown {
			h.agents[state] = held.Changes()
		}
	}
	h.srv = NewServer(Config{
		Commands: h.backend, Reader: fuzzAnomalies{h.backend}, Agents: fuzzAgents{h.backend},
		Waiter: fuzzWaiter{}, Keys: fuzzKeys{}, Idempotency: h.idem,
		Logger: slog.New(slog.NewTextHandler(&h.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	return h
}

// reset puts fuzzAnomalyID in status fuzzAnomalyStatuses[anomalyState%4] and
// fuzzAgentID in agent state agentState%fuzzAgentStates, and forgets every
// Idempotency-Key and log line of the inputs before.
func (h *fuzzHarness) reset(anomalyState, agentState uint8) {
	// Clipped, so that a command appends to a copy and never to a fixture.
	*h.backend = fuzzBackend{
		anomalies: map[uuid.UUID][]domain.Event{
			fuzzAnomalyID: slices.Clip(h.anomalies[int(anomalyState)%len(h.anomalies)]),
		},
		agentLog: slices.Clip(h.agents[int(agentState)%fuzzAgentStates]),
		pos:      100,
	}
	h.idem.recs = map[string]*fuzzIdemRecord{}
	h.logs.Reset()
}

func (b *fuzzBackend) next() uint64 { b.pos++; return b.pos }

func (b *fuzzBackend) containment(tenant string, agent uuid.UUID) domain.AgentContainment {
	var c domain.AgentContainment
	if tenant != fuzzTenant || agent != fuzzAgentID {
		return c
	}
	for _, e := range b.agentLog {
		if err := c.Apply(e); err != nil {
			panic(err) // the fixture is built by the domain itself
		}
	}
	return c
}

func (b *fuzzBackend) Report(_ context.Context, p domain.Principal, cmd domain.ReportAnomaly) (app.Result, error) {
	// Whether a reference names an anomaly of the tenant is the command
	// service's rule, tested in app; here every reference resolves.
	cmd.Tenant, cmd.AnomalyID = p.Tenant, uuid.New()
	a, err := domain.Report(cmd, domain.DefaultPolicy(), domain.Meta{EventID: uuid.New(), At: fuzzAt, Actor: p.Actor})
	if err != nil {
		return app.Result{}, err
	}
	b.anomalies[cmd.AnomalyID] = a.Changes()
	return app.Result{Anomaly: a.State(), Position: b.next()}, nil
}

func (b *fuzzBackend) update(p domain.Principal, id uuid.UUID, decide func(*domain.Anomaly, domain.Meta) error) (app.Result, error) {
	if p.Tenant != fuzzTenant {
		return app.Result{}, domain.Errorf(domain.ENOTFOUND, "anomaly %s not found", id)
	}
	a, err := domain.LoadAnomaly(b.anomalies[id])
	if err != nil {
		return app.Result{}, err
	}
	if err := decide(a, domain.Meta{EventID: uuid.New(), At: fuzzAt.Add(time.Hour), Actor: p.Actor}); err != nil {
		return app.Result{}, err
	}
	b.anomalies[id] = append(b.anomalies[id], a.Changes()...)
	return app.Result{Anomaly: a.State(), Position: b.next()}, nil
}

func (b *fuzzBackend) Investigate(_ context.Context, p domain.Principal, id uuid.UUID, cmd domain.InvestigateAnomaly) (app.Result, error) {
	return b.update(p, id, func(a *domain.Anomaly, m domain.Meta) error { return a.Investigate(cmd, m) })
}

func (b *fuzzBackend) Resolve(_ context.Context, p domain.Principal, id uuid.UUID, cmd domain.ResolveAnomaly) (app.Result, error) {
	return b.update(p, id, func(a *domain.Anomaly, m domain.Meta) error { return a.Resolve(cmd, m) })
}

func (b *fuzzBackend) Dismiss(_ context.Context, p domain.Principal, id uuid.UUID, cmd domain.DismissAnomaly) (app.Result, error) {
	return b.update(p, id, func(a *domain.Anomaly, m domain.Meta) error { return a.Dismiss(cmd, m) })
}

func (b *fuzzBackend) updateAgent(p domain.Principal, agent uuid.UUID,
	decide func(*domain.Agent, *domain.AgentContainment, domain.Meta) error) (app.AgentResult, error) {
	var stream []domain.Event
	if agent == fuzzAgentID {
		stream = b.agentStream
	}
	a, err := domain.LoadAgent(p.Tenant, agent, stream)
	if err != nil {
		return app.AgentResult{}, err
	}
	c := b.containment(p.Tenant, agent)
	if err := decide(a, &c, domain.Meta{EventID: uuid.New(), At: fuzzAt.Add(time.Hour), Actor: p.Actor}); err != nil {
		return app.AgentResult{}, err
	}
	b.agentStream = append(b.agentStream, a.Changes()...)
	b.agentLog = append(b.agentLog, a.Changes()...)
	return app.AgentResult{Position: b.next()}, nil
}

func (b *fuzzBackend) Restore(_ context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RestoreAgent) (app.AgentResult, error) {
	return b.updateAgent(p, agent, func(a *domain.Agent, c *domain.AgentContainment, m domain.Meta) error {
		return a.Restore(c, cmd, m)
	})
}

func (b *fuzzBackend) Revoke(_ context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RevokeAgent) (app.AgentResult, error) {
	return b.updateAgent(p, agent, func(a *domain.Agent, c *domain.AgentContainment, m domain.Meta) error {
		return a.Revoke(c, cmd, m)
	})
}

func (b *fuzzBackend) AnomalyEvents(_ context.Context, p domain.Principal, id uuid.UUID) ([]domain.Event, error) {
	if p.Tenant != fuzzTenant || len(b.anomalies[id]) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "anomaly %s not found", id)
	}
	return b.anomalies[id], nil
}

func (b *fuzzBackend) AnomalyAt(ctx context.Context, p domain.Principal, id uuid.UUID, at time.Time) (domain.AnomalyState, error) {
	evs, err := b.AnomalyEvents(ctx, p, id)
	if err != nil {
		return domain.AnomalyState{}, err
	}
	st, ok, err := projections.AnomalyAt(evs, at)
	if err == nil && !ok {
		err = domain.Errorf(domain.ENOTFOUND, "anomaly %s did not exist then", id)
	}
	return st, err
}

func (b *fuzzBackend) AgentAt(_ context.Context, p domain.Principal, agent uuid.UUID, _ []uuid.UUID, _ time.Time) (domain.AgentContainment, error) {
	return domain.AgentContainment{}, domain.Errorf(domain.ENOTFOUND, "agent %s not found", agent)
}

// fuzzAnomalies is the anomaly read model of a fuzzBackend; it is always caught up.
type fuzzAnomalies struct{ b *fuzzBackend }

func (r fuzzAnomalies) Get(tenant string, id uuid.UUID) (projections.AnomalyView, bool) {
	if tenant != fuzzTenant {
		return projections.AnomalyView{}, false
	}
	a, err := domain.LoadAnomaly(r.b.anomalies[id])
	if err != nil {
		return projections.AnomalyView{}, false
	}
	return projections.AnomalyView{AnomalyState: a.State()}, true
}

func (r fuzzAnomalies) List(string, projections.Filter, uint64, int) ([]projections.AnomalyView, uint64) {
	return nil, 0
}

func (r fuzzAnomalies) AnomaliesOfAgent(string, uuid.UUID) []uuid.UUID { return nil }

// fuzzAgents is the agent read model of a fuzzBackend.
type fuzzAgents struct{ b *fuzzBackend }

func (r fuzzAgents) Get(tenant string, agent uuid.UUID) (domain.AgentContainment, bool) {
	c := r.b.containment(tenant, agent)
	return c, c.Known()
}

type fuzzWaiter struct{}

func (fuzzWaiter) WaitFor(context.Context, uint64) error { return nil }

// fuzzKeys knows one API key, of tenant acme, with every scope.
type fuzzKeys struct{}

func (fuzzKeys) Authenticate(secret string) (domain.Principal, error) {
	if secret != fuzzSecret {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "unknown key")
	}
	return domain.Principal{Actor: fuzzActor, Tenant: fuzzTenant, Scopes: domain.AllScopes}, nil
}

// fuzzIdempotency keeps Idempotency-Key outcomes in memory, as the JetStream
// bucket does: a claim, then the stored response.
type fuzzIdempotency struct {
	mu   sync.Mutex
	recs map[string]*fuzzIdemRecord
}

type fuzzIdemRecord struct {
	fp       string
	response []byte // nil while the claim's request runs
}

func (s *fuzzIdempotency) Claim(_ context.Context, key, fp string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.recs[key]
	switch {
	case !ok:
		s.recs[key] = &fuzzIdemRecord{fp: fp}
		return nil, nil
	case rec.fp != fp:
		return nil, domain.Errorf(domain.EIDEMPOTENCY, "key used with another request")
	case rec.response == nil:
		return nil, domain.Errorf(domain.ECONFLICT, "a request with this key is running")
	}
	return rec.response, nil
}

func (s *fuzzIdempotency) Complete(_ context.Context, key, fp string, response []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[key] = &fuzzIdemRecord{fp: fp, response: response}
	return nil
}

func (s *fuzzIdempotency) Release(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, key)
	return nil
}

// fuzzRequest builds a request of the fuzz principal; body nil means none.
func fuzzRequest(method, target string, body []byte) *http.Request {
	var r *http.Request
	if body == nil {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("X-API-Key", fuzzSecret)
	r.Header.Set("X-Tenant-ID", fuzzTenant)
	return r
}

// fuzzServe serves r and checks what every answer must satisfy: no 5xx, a body
// that is valid UTF-8, and the documented error body on every 4xx.
func fuzzServe(t *testing.T, h *fuzzHarness, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, r)
	if rec.Code >= 500 {
		t.Fatalf("%s %s answered %d: %s\nlog: %s", r.Method, r.URL, rec.Code, fuzzShort(rec.Body.Bytes()), &h.logs)
	}
	if !utf8.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s answered %d with a body that is not UTF-8: %q", r.Method, r.URL, rec.Code, fuzzShort(rec.Body.Bytes()))
	}
	if rec.Code >= 400 {
		fuzzCheckErrorBody(t, rec)
	}
	return rec
}

// fuzzErrorCodes is the code each 4xx status may carry.
var fuzzErrorCodes = map[int][]string{
	http.StatusBadRequest:            {domain.EINVALID, domain.EINVALIDID},
	http.StatusUnauthorized:          {domain.EUNAUTHORIZED},
	http.StatusForbidden:             {domain.EFORBIDDEN},
	http.StatusNotFound:              {domain.ENOTFOUND},
	http.StatusMethodNotAllowed:      {domain.EINVALID},
	http.StatusConflict:              {domain.ECONFLICT},
	http.StatusRequestEntityTooLarge: {domain.EINVALID},
	http.StatusUnsupportedMediaType:  {domain.EINVALID},
	http.StatusUnprocessableEntity:   {domain.EIDEMPOTENCY},
}

// fuzzCheckErrorBody checks the error body of DESIGN.md: a JSON object with
// string fields code, message and trace_id, and an object details; the code
// fits the status and the trace id is the one in X-Trace-Id (but for a replay).
func fuzzCheckErrorBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error %d has Content-Type %q", rec.Code, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body == nil {
		t.Fatalf("error %d body is not a JSON object (%v): %q", rec.Code, err, fuzzShort(rec.Body.Bytes()))
	}
	for _, k := range []string{"code", "message", "trace_id"} {
		if _, ok := body[k].(string); !ok {
			t.Fatalf("error %d body field %s is not a string: %q", rec.Code, k, fuzzShort(rec.Body.Bytes()))
		}
	}
	if _, ok := body["details"].(map[string]any); !ok {
		t.Fatalf("error %d body field details is not an object: %q", rec.Code, fuzzShort(rec.Body.Bytes()))
	}
	// A replay repeats the first body byte for byte, with the first trace id.
	replayed := rec.Header().Get("Idempotent-Replayed") == "true"
	if tid := body["trace_id"].(string); tid == "" || !replayed && tid != rec.Header().Get("X-Trace-Id") {
		t.Fatalf("error %d trace_id %q, X-Trace-Id %q", rec.Code, tid, rec.Header().Get("X-Trace-Id"))
	}
	code := body["code"].(string)
	allowed, known := fuzzErrorCodes[rec.Code]
	if !known {
		t.Fatalf("undocumented status %d: %q", rec.Code, fuzzShort(rec.Body.Bytes()))
	}
	for _, c := range allowed {
		if c == code {
			return body
		}
	}
	t.Fatalf("status %d with code %q, want one of %v", rec.Code, code, allowed)
	return nil
}

// fuzzPost sends body (as application/json) to target, and when idempotent
// sends it once more with the same Idempotency-Key: the repeat must get the
// first answer byte for byte. It returns the first answer.
func fuzzPost(t *testing.T, h *fuzzHarness, target string, body []byte, idempotent bool) *httptest.ResponseRecorder {
	t.Helper()
	send := func() *httptest.ResponseRecorder {
		r := fuzzRequest(http.MethodPost, target, body)
		if idempotent {
			r.Header.Set("Idempotency-Key", "fuzz-key-1")
		}
		return fuzzServe(t, h, r)
	}
	rec := send()
	switch rec.Code {
	case http.StatusOK, http.StatusCreated, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		t.Fatalf("POST %s answered %d: %s", target, rec.Code, fuzzShort(rec.Body.Bytes()))
	}
	if idempotent {
		again := send()
		if rec.Code == http.StatusRequestEntityTooLarge {
			// An oversized body is refused before the key is claimed, so
			// there is nothing to replay: the repeat is refused afresh.
			if again.Code != rec.Code || again.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("repeat of a refused oversized body answered %d %q", again.Code, fuzzShort(again.Body.Bytes()))
			}
			return rec
		}
		if again.Code != rec.Code || !bytes.Equal(again.Body.Bytes(), rec.Body.Bytes()) ||
			again.Header().Get("Location") != rec.Header().Get("Location") {
			t.Fatalf("repeat with the same Idempotency-Key answered %d %q, first %d %q",
				again.Code, fuzzShort(again.Body.Bytes()), rec.Code, fuzzShort(rec.Body.Bytes()))
		}
		if again.Header().Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat with the same Idempotency-Key is not marked Idempotent-Replayed")
		}
	}
	return rec
}

// fuzzDecodeObject is the reference reading of a request body: one JSON object
// and nothing after it, every field one of v's. It decodes the body into v.
func fuzzDecodeObject(body []byte, v any) bool {
	if !json.Valid(body) {
		return false
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	// Keys match exactly (no case folding) and appear once each.
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	allowed := map[string]bool{}
	rt := reflect.TypeOf(v).Elem()
	for i := range rt.NumField() {
		allowed[strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	for k := range m {
		if !allowed[k] {
			return false
		}
	}
	keys, depth := 0, 0
	tokens := json.NewDecoder(bytes.NewReader(body))
	expectKey := false
	for {
		tok, err := tokens.Token()
		if err != nil {
			break
		}
		switch d := tok.(type) {
		case json.Delim:
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
			expectKey = depth == 1
			continue
		}
		if depth == 1 && expectKey {
			keys++
		}
		if depth == 1 {
			expectKey = !expectKey
		}
	}
	if keys != len(m) {
		return false // a duplicate key
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

// fuzzCanonicalUUID is the reference for ids: 36 characters, hex digits in
// either case with hyphens at 8, 13, 18 and 23, and not the nil UUID.
func fuzzCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	zero := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			zero = zero && c == '0'
		default:
			return false
		}
	}
	return !zero
}

// fuzzText is the reference for optional free text: absent, or at most limit bytes.
func fuzzText(s *string, limit int) bool { return s == nil || len(*s) <= limit }

// fuzzName is the reference for a person or system named in a body: not blank,
// at most MaxActorNameBytes.
func fuzzName(s string) bool {
	return strings.TrimSpace(s) != "" && len(s) <= domain.MaxActorNameBytes
}

// fuzzCheckStatus checks the status of a command whose body is judged (valid)
// before the state it meets (whose answer is stateStatus): 413, or 400 for
// JSON broken before the limit, over the size limit; 400 INVALID_INPUT for an
// invalid body; else what the state allows.
func fuzzCheckStatus(t *testing.T, rec *httptest.ResponseRecorder, body []byte, valid bool, stateStatus int) {
	t.Helper()
	if len(body) > MaxBodyBytes {
		if rec.Code != http.StatusRequestEntityTooLarge && rec.Code != http.StatusBadRequest {
			t.Fatalf("a body of %d bytes answered %d, want 413 (or 400 for JSON broken before the limit)", len(body), rec.Code)
		}
		return
	}
	want := http.StatusBadRequest
	if valid {
		want = stateStatus
	}
	if rec.Code != want {
		t.Fatalf("body %q answered %d, want %d: %s", fuzzShort(body), rec.Code, want, fuzzShort(rec.Body.Bytes()))
	}
	if want == http.StatusBadRequest {
		if code := fuzzCheckErrorBody(t, rec)["code"]; code != domain.EINVALID {
			t.Fatalf("an invalid body answered code %v, want %s", code, domain.EINVALID)
		}
	}
}

// fuzzShort returns b, cut to a length a failure message can show.
func fuzzShort(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%s... (%d bytes)", b[:300], len(b))
	}
	return string(b)
}

// fuzzAnomalyBody decodes a 2xx answer that must be the anomaly representation.
func fuzzAnomalyBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var a map[string]any
	if err := fuzzUnmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %q", rec.Code, err, fuzzShort(rec.Body.Bytes()))
	}
	for _, k := range []string{"anomaly_id", "id", "agent_id", "anomaly_type", "severity", "description", "details",
		"status", "auto_response", "assignee", "resolution", "notes", "resolved_by", "dismiss_reason",
		"references_anomaly_id", "referenced_by", "created_at", "updated_at", "resolved_at"} {
		if _, ok := a[k]; !ok {
			t.Fatalf("the anomaly lacks %s: %s", k, fuzzShort(rec.Body.Bytes()))
		}
	}
	if a["anomaly_id"] != a["id"] {
		t.Fatalf("anomaly_id %v and id %v differ", a["anomaly_id"], a["id"])
	}
	if _, ok := a["details"].(map[string]any); !ok {
		t.Fatalf("details is not an object: %s", fuzzShort(rec.Body.Bytes()))
	}
	return a
}

// fuzzUnmarshal decodes JSON keeping numbers as written, so that a number no
// float64 holds (1e999999) compares as it was sent.
func fuzzUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// fuzzStringOr returns *s, or def when s is nil.
func fuzzStringOr(s *string, def any) any {
	if s == nil {
		return def
	}
	return *s
}

// fuzzBodySeeds are request bodies every body target starts from: the nasty
// kinds that every decoder must refuse cleanly, and an empty object. (A JSON
// null is a seed of the targets whose body is required only: see the report of
// the fuzzing.) Bodies at the size limits are in TestFuzzChecksOnLargeBodies,
// not here: the fuzzer would spend its time minimising inputs that large.
var fuzzBodySeeds = []string{
	``,
	` `,
	`{}`,
	`[]`,
	`"resolution"`,
	`0`,
	`1e999999`,
	`-`,
	`{`,
	`}`,
	`{"":1}`,
	`{}{}`,
	`{} x`,
	`{}` + "\n",
	`{"a":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`,
	"{\"notes\":\"\\ud800\\udc00\\u0000 \xff\xfe é 漢字 🦀\"}",
	`{"notes":null}`,
	`{"notes":5}`,
	`{"notes":{"nested":{"deeper":[1,2,{"x":null}]}}}`,
	`{"unknown":true}`,
	"\xef\xbb\xbf{}",
}

// fuzzAddSeeds adds every body seed and then extra, each for every fixture
// state, half of them with an Idempotency-Key.
func fuzzAddSeeds(f *testing.F, extra ...string) {
	for i, s := range slices.Concat(fuzzBodySeeds, extra) {
		for state := range uint8(4) {
			f.Add([]byte(s), state, (i+int(state))%2 == 0)
		}
	}
}

// FuzzReportBody fuzzes the body of POST /v1/anomalies (state is unused): it
// is 201 exactly when the body is one JSON object with only the documented
// fields and valid values, and the anomaly shows what was sent.
func FuzzReportBody(f *testing.F) {
	report := `{"agent_id":"` + fuzzAgentID.String() + `","anomaly_type":"rate_spike","severity":"high"`
	fuzzAddSeeds(f,
		report+`}`,
		`{"agent_id":"`+strings.ToUpper(fuzzAgentID.String())+`","anomaly_type":"x.y-z_0","severity":"low","description":"é","details":{"k":[1,{"n":null}]},"references_anomaly_id":"`+fuzzAnomalyID.String()+`"}`,
		report+`,"details":null,"description":null,"references_anomaly_id":null}`,
		report+`,"details":[1]}`,
		report+`,"details":"{}"}`,
		report+`,"details":{"a":1e999999,"a":-0}}`,
		report+`,"description":"\xff"}`,
		report+`,"references_anomaly_id":"not-a-uuid"}`,
		report+`,"severity":"bogus"}`,
		report+`,"agent_id":null}`,
		report+`,"extra":1}`,
		report+`}{}`,
		`{"agent_id":"`+fuzzAgentID.String()+`","anomaly_type":"Rate_Spike","severity":"medium"}`,
		`{"agent_id":"`+fuzzAgentID.String()+`","anomaly_type":"rate_spike","severity":"HIGH"}`,
		`{"agent_id":"00000000-0000-0000-0000-000000000000","anomaly_type":"rate_spike","severity":"high"}`,
		`{"agent_id":"{`+fuzzAgentID.String()+`}","anomaly_type":"rate_spike","severity":"high"}`,
		`{"agent_id":"urn:uuid:`+fuzzAgentID.String()+`","anomaly_type":"rate_spike","severity":"high"}`,
		`{"agent_id":123,"anomaly_type":"rate_spike","severity":"high"}`,
		`{"agent_id":"`+fuzzAgentID.String()+`"}`,
		`null`,
	)
	f.Fuzz(newFuzzHarness(f).report)
}

func (h *fuzzHarness) report(t *testing.T, body []byte, _ uint8, idempotent bool) {
	h.reset(0, 0)
	rec := fuzzPost(t, h, "/v1/anomalies", body, idempotent)

	var req struct {
		AgentID             *string         `json:"agent_id"`
		AnomalyType         *string         `json:"anomaly_type"`
		Severity            *string         `json:"severity"`
		Description         *string         `json:"description"`
		Details             json.RawMessage `json:"details"`
		ReferencesAnomalyID *string         `json:"references_anomaly_id"`
	}
	valid := fuzzDecodeObject(body, &req) &&
		req.AgentID != nil && fuzzCanonicalUUID(*req.AgentID) &&
		req.AnomalyType != nil && domain.ValidAnomalyType(*req.AnomalyType) &&
		req.Severity != nil && fuzzParses(domain.ParseSeverity, *req.Severity) &&
		fuzzText(req.Description, domain.MaxDescriptionBytes) &&
		len(req.Details) <= domain.MaxDetailsBytes && utf8.Valid(req.Details) &&
		(len(req.Details) == 0 || string(req.Details) == "null" || req.Details[0] == '{') &&
		(req.ReferencesAnomalyID == nil || fuzzCanonicalUUID(*req.ReferencesAnomalyID))
	fuzzCheckStatus(t, rec, body, valid, http.StatusCreated)
	if rec.Code != http.StatusCreated {
		return
	}

	a := fuzzAnomalyBody(t, rec)
	if loc := rec.Header().Get("Location"); loc != "/v1/anomalies/"+a["anomaly_id"].(string) {
		t.Fatalf("Location %q for anomaly %v", loc, a["anomaly_id"])
	}
	want := map[string]any{
		"agent_id": strings.ToLower(*req.AgentID), "anomaly_type": *req.AnomalyType, "severity": *req.Severity,
		"status": "open", "auto_response": domain.DefaultPolicy().AutoResponse(domain.Severity(*req.Severity)).String(),
		"description": fuzzStringOr(req.Description, nil), "references_anomaly_id": nil,
	}
	if req.ReferencesAnomalyID != nil {
		want["references_anomaly_id"] = strings.ToLower(*req.ReferencesAnomalyID)
	}
	fuzzCheckFields(t, rec, a, want)
	wantDetails := map[string]any{}
	if len(req.Details) > 0 && string(req.Details) != "null" {
		if err := fuzzUnmarshal(req.Details, &wantDetails); err != nil {
			t.Fatalf("reference decode of details: %v", err)
		}
	}
	if got, want := fuzzMustMarshal(t, a["details"]), fuzzMustMarshal(t, wantDetails); !bytes.Equal(got, want) {
		t.Fatalf("details are %s, want %s", got, want)
	}
}

// fuzzParses reports whether parse accepts s.
func fuzzParses[T any](parse func(string) (T, error), s string) bool {
	_, err := parse(s)
	return err == nil
}

func fuzzMustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return b
}

// FuzzResolveBody fuzzes the body of POST /v1/anomalies/{anomalyId}/resolve
// against an anomaly in each status: 400 for a body that is not a valid request
// whatever the status, else 200, or 409 on a closed anomaly.
func FuzzResolveBody(f *testing.F) {
	fuzzAddSeeds(f,
		`{"resolution":"false_positive"}`,
		`{"resolution":"mitigated","notes":"contained","resolved_by":"alice@example.com"}`,
		`{"resolution":"accepted_risk","notes":null,"resolved_by":null}`,
		`{"resolution":"agent_revoked","resolved_by":"`+strings.Repeat("r", domain.MaxActorNameBytes)+`"}`,
		`{"resolution":"agent_revoked","resolved_by":"`+strings.Repeat("r", domain.MaxActorNameBytes+1)+`"}`,
		`{"resolution":"false_positive","resolved_by":" \t\u3000"}`,
		`{"resolution":"FALSE_POSITIVE"}`,
		`{"resolution":""}`,
		`{"resolution":null}`,
		`{"resolution":["mitigated"]}`,
		`{"resolution":"mitigated","resolution":"agent_revoked"}`,
		`{"resolution":"mitigated"}{"resolution":"agent_revoked"}`,
		`{"resolution":"mitigated","status":"open"}`,
		`null`,
	)
	f.Fuzz(newFuzzHarness(f).resolve)
}

func (h *fuzzHarness) resolve(t *testing.T, body []byte, state uint8, idempotent bool) {
	h.reset(state, 0)
	status := fuzzAnomalyStatuses[int(state)%len(fuzzAnomalyStatuses)]
	rec := fuzzPost(t, h, "/v1/anomalies/"+fuzzAnomalyID.String()+"/resolve", body, idempotent)

	var req struct {
		Resolution *string `json:"resolution"`
		Notes      *string `json:"notes"`
		ResolvedBy *string `json:"resolved_by"`
	}
	valid := fuzzDecodeObject(body, &req) &&
		req.Resolution != nil && fuzzParses(domain.ParseResolution, *req.Resolution) &&
		fuzzText(req.Notes, domain.MaxNotesBytes) && (req.ResolvedBy == nil || fuzzName(*req.ResolvedBy))
	fuzzCheckStatus(t, rec, body, valid, fuzzUnlessClosed(status, http.StatusOK))
	fuzzCheckConflict(t, rec, status)
	if rec.Code != http.StatusOK {
		return
	}
	a := fuzzAnomalyBody(t, rec)
	want := map[string]any{
		"anomaly_id": fuzzAnomalyID.String(), "status": "resolved", "resolution": *req.Resolution,
		"resolved_by": fuzzStringOr(req.ResolvedBy, fuzzActor.ID),
	}
	if req.Notes != nil {
		want["notes"] = *req.Notes
	}
	fuzzCheckFields(t, rec, a, want)
	if a["resolved_at"] == nil {
		t.Fatalf("a resolved anomaly has no resolved_at: %s", fuzzShort(rec.Body.Bytes()))
	}
}

// fuzzUnlessClosed returns 409 for a closed anomaly, else status.
func fuzzUnlessClosed(s domain.Status, status int) int {
	if s == domain.StatusResolved || s == domain.StatusDismissed {
		return http.StatusConflict
	}
	return status
}

// fuzzCheckConflict checks that a 409 on an anomaly names its current status.
func fuzzCheckConflict(t *testing.T, rec *httptest.ResponseRecorder, status domain.Status) {
	t.Helper()
	if rec.Code != http.StatusConflict {
		return
	}
	details := fuzzCheckErrorBody(t, rec)["details"].(map[string]any)
	if details["status"] != string(status) {
		t.Fatalf("409 names status %v, the anomaly is %s: %s", details["status"], status, fuzzShort(rec.Body.Bytes()))
	}
}

func fuzzCheckFields(t *testing.T, rec *httptest.ResponseRecorder, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s is %#v, want %#v: %s", k, got[k], v, fuzzShort(rec.Body.Bytes()))
		}
	}
}

// FuzzInvestigateBody fuzzes the optional body of POST
// /v1/anomalies/{anomalyId}/investigate: an empty body or a valid object is 200
// on an open anomaly and 409 on any other; anything else is 400.
func FuzzInvestigateBody(f *testing.F) {
	fuzzAddSeeds(f,
		`{"assignee":"bob","notes":"looking"}`,
		`{"assignee":null,"notes":null}`,
		`{"assignee":""}`,
		`{"assignee":"`+strings.Repeat("a", domain.MaxActorNameBytes+1)+`"}`,
		`{"assignee":"bob","assignee":"   "}`,
		`{"assignee":["bob"]}`,
	)
	f.Fuzz(newFuzzHarness(f).investigate)
}

func (h *fuzzHarness) investigate(t *testing.T, body []byte, state uint8, idempotent bool) {
	h.reset(state, 0)
	status := fuzzAnomalyStatuses[int(state)%len(fuzzAnomalyStatuses)]
	rec := fuzzPost(t, h, "/v1/anomalies/"+fuzzAnomalyID.String()+"/investigate", body, idempotent)

	var req struct {
		Assignee *string `json:"assignee"`
		Notes    *string `json:"notes"`
	}
	valid := len(body) == 0 || fuzzDecodeObject(body, &req) &&
		(req.Assignee == nil || fuzzName(*req.Assignee)) && fuzzText(req.Notes, domain.MaxNotesBytes)
	want := http.StatusConflict
	if status == domain.StatusOpen {
		want = http.StatusOK
	}
	fuzzCheckStatus(t, rec, body, valid, want)
	fuzzCheckConflict(t, rec, status)
	if rec.Code != http.StatusOK {
		return
	}
	fuzzCheckFields(t, rec, fuzzAnomalyBody(t, rec), map[string]any{
		"anomaly_id": fuzzAnomalyID.String(), "status": "investigating",
		"assignee": fuzzStringOr(req.Assignee, nil), "notes": fuzzStringOr(req.Notes, nil),
	})
}

// FuzzDismissBody fuzzes the body of POST /v1/anomalies/{anomalyId}/dismiss:
// a non-blank reason is 200, or 409 on a closed anomaly; anything else is 400.
func FuzzDismissBody(f *testing.F) {
	fuzzAddSeeds(f,
		`{"reason":"duplicate of another report"}`,
		`{"reason":""}`,
		`{"reason":" \n\t"}`,
		`{"reason":null}`,
		`{"reason":"ok","reason":""}`,
		`{"reason":"ok","notes":"no such field"}`,
		`{"reason":true}`,
		`null`,
	)
	f.Fuzz(newFuzzHarness(f).dismiss)
}

func (h *fuzzHarness) dismiss(t *testing.T, body []byte, state uint8, idempotent bool) {
	h.reset(state, 0)
	status := fuzzAnomalyStatuses[int(state)%len(fuzzAnomalyStatuses)]
	rec := fuzzPost(t, h, "/v1/anomalies/"+fuzzAnomalyID.String()+"/dismiss", body, idempotent)

	var req struct {
		Reason *string `json:"reason"`
	}
	valid := fuzzDecodeObject(body, &req) && req.Reason != nil && fuzzReason(*req.Reason)
	fuzzCheckStatus(t, rec, body, valid, fuzzUnlessClosed(status, http.StatusOK))
	fuzzCheckConflict(t, rec, status)
	if rec.Code != http.StatusOK {
		return
	}
	fuzzCheckFields(t, rec, fuzzAnomalyBody(t, rec), map[string]any{
		"anomaly_id": fuzzAnomalyID.String(), "status": "dismissed", "dismiss_reason": *req.Reason,
	})
}

// fuzzReason is the reference for a required reason: not blank, at most
// MaxNotesBytes.
func fuzzReason(s string) bool { return strings.TrimSpace(s) != "" && len(s) <= domain.MaxNotesBytes }

// fuzzAgentBody checks a 2xx answer that must be the agent representation.
func fuzzAgentBody(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var a struct {
		AgentID   *string          `json:"agent_id"`
		Status    *string          `json:"status"`
		Holds     []map[string]any `json:"holds"`
		UpdatedAt *string          `json:"updated_at"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d is not the agent: %v: %q", rec.Code, err, fuzzShort(rec.Body.Bytes()))
	}
	if a.AgentID == nil || *a.AgentID != fuzzAgentID.String() || a.Status == nil || a.Holds == nil || a.UpdatedAt == nil {
		t.Fatalf("answer %d is not the agent: %s", rec.Code, fuzzShort(rec.Body.Bytes()))
	}
}

// FuzzRestoreBody fuzzes the optional body of POST /v1/agents/{agentId}/restore
// against an agent in each containment state.
func FuzzRestoreBody(f *testing.F) {
	fuzzAddSeeds(f,
		`{"notes":"fixed the prompt"}`,
		`{"reason":"restore takes notes"}`,
	)
	f.Fuzz(newFuzzHarness(f).restore)
}

func (h *fuzzHarness) restore(t *testing.T, body []byte, state uint8, idempotent bool) {
	h.reset(0, state)
	rec := fuzzPost(t, h, "/v1/agents/"+fuzzAgentID.String()+"/restore", body, idempotent)

	var req struct {
		Notes *string `json:"notes"`
	}
	valid := len(body) == 0 || fuzzDecodeObject(body, &req) && fuzzText(req.Notes, domain.MaxNotesBytes)
	want := map[int]int{
		fuzzAgentHeldOpen:  http.StatusConflict,
		fuzzAgentMitigated: http.StatusOK,
		fuzzAgentRevoked:   http.StatusConflict,
		fuzzAgentUnknown:   http.StatusNotFound,
	}[int(state)%fuzzAgentStates]
	fuzzCheckStatus(t, rec, body, valid, want)
	if rec.Code == http.StatusOK {
		fuzzAgentBody(t, rec)
	}
}

// FuzzRevokeBody fuzzes the body of POST /v1/agents/{agentId}/revoke against an
// agent in each containment state.
func FuzzRevokeBody(f *testing.F) {
	fuzzAddSeeds(f,
		`{"reason":"exfiltration confirmed"}`,
		`{"reason":""}`,
		`{"reason":"\u2028\u00a0"}`,
		`{"reason":null}`,
		`{"reason":"x","notes":"revoke takes a reason only"}`,
		`null`,
	)
	f.Fuzz(newFuzzHarness(f).revoke)
}

func (h *fuzzHarness) revoke(t *testing.T, body []byte, state uint8, idempotent bool) {
	h.reset(0, state)
	rec := fuzzPost(t, h, "/v1/agents/"+fuzzAgentID.String()+"/revoke", body, idempotent)

	var req struct {
		Reason *string `json:"reason"`
	}
	valid := fuzzDecodeObject(body, &req) && req.Reason != nil && fuzzReason(*req.Reason)
	want := map[int]int{
		fuzzAgentHeldOpen:  http.StatusOK,
		fuzzAgentMitigated: http.StatusOK,
		fuzzAgentRevoked:   http.StatusConflict,
		fuzzAgentUnknown:   http.StatusNotFound,
	}[int(state)%fuzzAgentStates]
	fuzzCheckStatus(t, rec, body, valid, want)
	if rec.Code == http.StatusOK {
		fuzzAgentBody(t, rec)
	}
}

// TestFuzzChecksOnLargeBodies runs the checks of the body targets on bodies at
// and over the size limits: of a field, of the whole body (64 KiB), and of JSON
// nesting (10000 levels).
func TestFuzzChecksOnLargeBodies(t *testing.T) {
	h := newFuzzHarness(t)
	padded := func(obj string, n int) string { return obj + strings.Repeat(" ", n-len(obj)) }
	field := func(name string, n int) string { return `{"` + name + `":"` + strings.Repeat("x", n) + `"}` }
	common := []string{
		`{"a":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}`,
		`{"a":` + strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000) + `}`,
		padded(`{}`, MaxBodyBytes),
		padded(`{}`, MaxBodyBytes+1),
		field("notes", MaxBodyBytes),
		field("notes", domain.MaxNotesBytes),
		field("notes", domain.MaxNotesBytes+1),
	}
	report := `{"agent_id":"` + fuzzAgentID.String() + `","anomaly_type":"rate_spike","severity":"high"`
	details := func(n int) string { // a details object of n bytes
		return report + `,"details":{"k":"` + strings.Repeat("d", n-len(`{"k":""}`)) + `"}}`
	}
	reason := func(n int) string { return `{"reason":"` + strings.Repeat("r", n) + `"}` }
	resolve := `{"resolution":"mitigated"}`
	for _, c := range []struct {
		name   string
		check  func(*testing.T, []byte, uint8, bool)
		bodies []string
	}{
		{"Report", h.report, []string{
			report + `,"description":"` + strings.Repeat("d", domain.MaxDescriptionBytes) + `"}`,
			report + `,"description":"` + strings.Repeat("d", domain.MaxDescriptionBytes+1) + `"}`,
			details(domain.MaxDetailsBytes), details(domain.MaxDetailsBytes + 1),
			padded(report+`}`, MaxBodyBytes), padded(report+`}`, MaxBodyBytes+1),
		}},
		{"Resolve", h.resolve, []string{
			`{"resolution":"mitigated","notes":"` + strings.Repeat("n", domain.MaxNotesBytes) + `"}`,
			`{"resolution":"mitigated","notes":"` + strings.Repeat("n", domain.MaxNotesBytes+1) + `"}`,
			padded(resolve, MaxBodyBytes), padded(resolve, MaxBodyBytes+1),
		}},
		{"Investigate", h.investigate, nil},
		{"Dismiss", h.dismiss, []string{
			reason(domain.MaxNotesBytes), reason(domain.MaxNotesBytes + 1), padded(reason(1), MaxBodyBytes),
		}},
		{"Restore", h.restore, nil},
		{"Revoke", h.revoke, []string{
			reason(domain.MaxNotesBytes), reason(domain.MaxNotesBytes + 1), padded(reason(1), MaxBodyBytes),
		}},
	} {
		for i, body := range slices.Concat(common, c.bodies) {
			for state := range uint8(4) {
				t.Run(fmt.Sprintf("%s/%d/%d", c.name, i, state), func(t *testing.T) {
					c.check(t, []byte(body), state, state%2 == 0)
				})
			}
		}
	}
}

// FuzzPathID fuzzes the id in GET /v1/anomalies/{anomalyId} and GET
// /v1/agents/{agentId}: 400 INVALID_ID unless the id is a canonical UUID, then
// 200 for the fixture and 404 for any other. An id that is not one clean path
// segment (empty, ".", "..", or holding "/") never reaches the handler: the
// router answers it (a redirect to the cleaned path, 404, 405, or another
// route), never with a 5xx.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{
		fuzzAnomalyID.String(), fuzzAgentID.String(), strings.ToUpper(fuzzAnomalyID.String()),
		uuid.NewSHA1(uuid.NameSpaceURL, []byte("x")).String(),
		"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"{" + fuzzAnomalyID.String() + "}", "urn:uuid:" + fuzzAnomalyID.String(),
		strings.ReplaceAll(fuzzAnomalyID.String(), "-", ""),
		fuzzAnomalyID.String()[:35] + "g", fuzzAnomalyID.String()[:35] + "é",
		" " + fuzzAnomalyID.String()[1:], fuzzAnomalyID.String() + "\n",
		"", ".", "..", "...", "/", "//", "a/b", "%2F", "%zz", "?x=1", "#frag", "\x00", "\xff", "漢字", "maip-anom:01J",
		fuzzAnomalyID.String() + "/events", "x/events", "x/resolve",
		strings.Repeat("a", 4096),
	} {
		f.Add(s)
	}
	h := newFuzzHarness(f)
	f.Fuzz(func(t *testing.T, id string) {
		h.reset(0, 0)
		for _, route := range []struct {
			prefix string
			known  uuid.UUID
		}{{"/v1/anomalies/", fuzzAnomalyID}, {"/v1/agents/", fuzzAgentID}} {
			rec := fuzzServe(t, h, fuzzRequest(http.MethodGet, route.prefix+url.PathEscape(id), nil))
			switch {
			case id == "" || id == "." || id == ".." || strings.Contains(id, "/"):
				if rec.Code >= 300 && rec.Code < 400 && rec.Header().Get("Location") == "" {
					t.Fatalf("GET %s%q redirected without a Location", route.prefix, id)
				}
			case fuzzCanonicalUUID(id):
				want := http.StatusNotFound
				if strings.EqualFold(id, route.known.String()) {
					want = http.StatusOK
				}
				if rec.Code != want {
					t.Fatalf("GET %s%q answered %d, want %d: %s", route.prefix, id, rec.Code, want, fuzzShort(rec.Body.Bytes()))
				}
			default:
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("GET %s%q answered %d, want 400: %s", route.prefix, id, rec.Code, fuzzShort(rec.Body.Bytes()))
				}
				if code := fuzzCheckErrorBody(t, rec)["code"]; code != domain.EINVALIDID {
					t.Fatalf("GET %s%q answered code %v, want %s", route.prefix, id, code, domain.EINVALIDID)
				}
			}
		}
	})
}

// FuzzParseUUID checks parseUUID against the reference: it accepts exactly the
// canonical 36-character form of a non-nil UUID, in either case, and returns
// that UUID.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{
		fuzzAnomalyID.String(), strings.ToUpper(fuzzAgentID.String()), "00000000-0000-0000-0000-000000000000",
		"00000000-0000-0000-0000-000000000001", "{" + fuzzAnomalyID.String() + "}", "urn:uuid:" + fuzzAnomalyID.String(),
		strings.ReplaceAll(fuzzAnomalyID.String(), "-", ""), strings.ReplaceAll(fuzzAnomalyID.String(), "-", "_"),
		"6f1c2a3b-4d5e-4f60-8a71+92b3c4d5e6f7", "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6fé", "", "-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseUUID(s)
		if want := fuzzCanonicalUUID(s); (err == nil) != want {
			t.Fatalf("parseUUID(%q) error %v, want accepted %v", s, err, want)
		}
		if err != nil {
			if id != uuid.Nil {
				t.Fatalf("parseUUID(%q) failed but returned %s", s, id)
			}
			return
		}
		if id.String() != strings.ToLower(s) {
			t.Fatalf("parseUUID(%q) = %s", s, id)
		}
	})
}

// FuzzTenantHeader fuzzes X-Tenant-ID under a valid key of tenant acme: 400
// unless the value is a well-formed tenant, 403 for any tenant but acme, and
// only acme gets through.
func FuzzTenantHeader(f *testing.F) {
	for _, s := range []string{
		"acme", "ACME", "acme ", " acme", "acme\n", "acme\x00", "acme,acme", "acm", "acme-2", "a_b-C9",
		"", "-", "_", strings.Repeat("a", 64), strings.Repeat("a", 65), "acmé", "ａｃｍｅ", "acme;other", "*",
	} {
		f.Add(s)
	}
	h := newFuzzHarness(f)
	f.Fuzz(func(t *testing.T, v string) {
		h.reset(0, 0)
		r := fuzzRequest(http.MethodGet, "/v1/anomalies", nil)
		r.Header.Set("X-Tenant-ID", v)
		rec := fuzzServe(t, h, r)
		want := http.StatusBadRequest
		switch {
		case v == fuzzTenant:
			want = http.StatusOK
		case domain.ValidTenant(v):
			want = http.StatusForbidden
		}
		if rec.Code != want {
			t.Fatalf("X-Tenant-ID %q answered %d, want %d: %s", v, rec.Code, want, fuzzShort(rec.Body.Bytes()))
		}
		if want == http.StatusBadRequest {
			body := fuzzCheckErrorBody(t, rec)
			if body["code"] != domain.EINVALID || body["details"].(map[string]any)["header"] != "X-Tenant-ID" {
				t.Fatalf("X-Tenant-ID %q answered %s, want INVALID_INPUT naming the header", v, fuzzShort(rec.Body.Bytes()))
			}
		}
	})
}
