package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
	"pgregory.net/rapid"
)

// isoMaxSteps bounds the steps of one rapid check, so that the default 100
// checks (-rapid.checks) on both backends take about ten seconds under -race.
const isoMaxSteps = 16

// isoActions are the steps a check draws from; commands that build up state
// come more often, so that short checks still reach agents held, mitigated,
// restored and revoked by several tenants at once.
var isoActions = []string{"report", "report", "report", "investigate", "resolve", "resolve", "dismiss",
	"restore", "restore", "revoke", "getAnomaly", "list", "events", "getAgent"}

// isoCodes are the error codes of the refusals the test expects.
var isoCodes = map[int]string{http.StatusBadRequest: "INVALID_INPUT", http.StatusForbidden: "FORBIDDEN",
	http.StatusNotFound: "NOT_FOUND", http.StatusConflict: "CONFLICT"}

// isoReadOnlyScopes are the scopes of the read-only key of every tenant.
var isoReadOnlyScopes = []string{domain.ScopeAnomaliesRead, domain.ScopeAgentsRead}

// TestTenantIsolation sends random sequences of commands and reads to one
// running server per backend, each with a random credential and X-Tenant-ID, and
// checks after every step, against a model of what each tenant owns, that no
// tenant can see or change what another owns, even on an agent they share.
func TestTenantIsolation(t *testing.T) { forEachBackend(t, testTenantIsolation) }

func testTenantIsolation(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	creds := newIsoTenants(t, dir+"/keys.json")
	s := start(t, dir, flags...)
	owners := map[string]string{} // every anomaly reported so far, and its tenant
	rapid.Check(t, func(rt *rapid.T) {
		w := newIsoWorld(rt, s, creds, owners)
		for range rapid.IntRange(1, isoMaxSteps).Draw(rt, "steps") {
			w.step(rt)
			w.check(rt)
		}
	})
}

// isoCreds are one tenant's name and the secrets of its two keys.
type isoCreds struct {
	name, full, readOnly string
}

const isoTenantChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

func isoRandomToken(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = isoTenantChars[rand.IntN(len(isoTenantChars))]
	}
	return string(b)
}

func isoSwapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}

// newIsoTenants creates the keys of three tenants in the keys file: a full and
// a read-only key each. Their names are random and adversarial to a sloppy
// tenant check: the second extends the first, the third differs from the first
// only in case when it can.
func newIsoTenants(t *testing.T, path string) [3]isoCreds {
	t.Helper()
	first := isoRandomToken(1 + rand.IntN(20))
	names := [3]string{first, first + "_" + isoRandomToken(1+rand.IntN(8)), isoSwapCase(first)}
	if names[2] == first {
		names[2] = first + "-"
	}
	key := func(tenant string, scopes []string) string {
		_, secret, err := auth.CreateKey(path, tenant, "isolation", scopes, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	var out [3]isoCreds
	for i, n := range names {
		if !domain.ValidTenant(n) {
			t.Fatalf("generated an invalid tenant name %q", n)
		}
		out[i] = isoCreds{name: n, full: key(n, domain.AllScopes), readOnly: key(n, isoReadOnlyScopes)}
	}
	t.Logf("tenants %q", names)
	return out
}

// isoAnomaly is the model of one anomaly.
type isoAnomaly struct {
	id, agent, anomalyType, severity string
	owner                            *isoTenant
	containment                      int // index into isoContainments
	status, resolution, updatedAt    string
	events                           int
	released                         bool // a restore released its mitigated hold
	referencedBy                     []string
}

var (
	isoSeverities   = []string{"low", "medium", "high", "critical"}
	isoContainments = []string{"none", "throttled", "suspended", "quarantined"} // default policy, by severity
	// isoResolveChoices has mitigated twice: only its holds can be restored.
	isoResolveChoices = []string{"mitigated", "false_positive", "mitigated", "accepted_risk", "agent_revoked"}
	isoAnomalyTypes   = []string{"rate_spike", "scope_violation", "trust_drop"}
	isoListStatuses   = []string{"", "open", "investigating", "resolved", "dismissed"}
	isoListSeverities = append([]string{""}, isoSeverities...)
	isoListTypes      = append([]string{""}, isoAnomalyTypes...)
)

// isoTenant is the model of what one tenant owns.
type isoTenant struct {
	isoCreds
	private   string   // an agent only this tenant reports on
	agents    []string // the agents it reports on: its private one and the shared ones
	anomalies []*isoAnomaly
	revoked   map[string]bool // manual revocations
}

func (k *isoTenant) owns(id string) *isoAnomaly {
	for _, a := range k.anomalies {
		if a.id == id {
			return a
		}
	}
	return nil
}

func (k *isoTenant) of(agent string) []*isoAnomaly {
	var out []*isoAnomaly
	for _, a := range k.anomalies {
		if a.agent == agent {
			out = append(out, a)
		}
	}
	return out
}

type isoHold struct {
	AnomalyID   string `json:"anomaly_id"`
	Containment string `json:"containment"`
	Reason      string `json:"reason"`
}

// agent returns the agent as this tenant must see it, by the rules of
// DESIGN.md "Agent containment", from this tenant's anomalies only.
func (k *isoTenant) agent(agent string) (known bool, status string, holds []isoHold) {
	revoked, strongest := k.revoked[agent], 0
	holds = []isoHold{}
	for _, a := range k.of(agent) {
		known = true
		if a.resolution == "agent_revoked" {
			revoked = true
		}
		reason := ""
		switch {
		case a.containment == 0:
		case a.status == "open" || a.status == "investigating":
			reason = a.status
		case a.resolution == "mitigated" && !a.released:
			reason = "mitigated"
		}
		if reason != "" {
			holds = append(holds, isoHold{a.id, isoContainments[a.containment], reason})
			strongest = max(strongest, a.containment)
		}
	}
	status = "active"
	switch {
	case revoked:
		status = "revoked"
	case strongest > 0:
		status = isoContainments[strongest]
	}
	slices.SortFunc(holds, func(a, b isoHold) int { return strings.Compare(a.AnomalyID, b.AnomalyID) })
	return known, status, holds
}

// isoWorld is the model of one check: what the three tenants did in it, on
// agents of its own (two of them shared by all three), and a tenant that has no
// key. The tenants live on from check to check, so the check sees only what it
// reported itself: its lists ask for anomalies created after it began.
type isoWorld struct {
	s        *server
	tenants  []*isoTenant
	shared   []string // the agents all three tenants report on
	stranger string
	since    string            // RFC 3339 time the check began at
	all      []*isoAnomaly     // the anomalies of this check, in report order
	owners   map[string]string // the tenant of every anomaly of every check so far
}

func newIsoWorld(t *rapid.T, s *server, creds [3]isoCreds, owners map[string]string) *isoWorld {
	w := &isoWorld{s: s, stranger: "stranger-" + uuid.NewString(), owners: owners,
		since: time.Now().UTC().Format(time.RFC3339Nano)}
	w.shared = []string{uuid.NewString(), uuid.NewString()}
	for _, c := range creds {
		k := &isoTenant{isoCreds: c, private: uuid.NewString(), revoked: map[string]bool{}}
		k.agents = append([]string{k.private}, w.shared...)
		w.tenants = append(w.tenants, k)
	}
	t.Logf("since %s, private agents %s %s %s, shared agents %v", w.since,
		w.tenants[0].private, w.tenants[1].private, w.tenants[2].private, w.shared)
	return w
}

// isoCall is one request, and who sends it.
type isoCall struct {
	key      *isoTenant // whose key
	readOnly bool
	tenant   string // X-Tenant-ID
	method   string
	path     string
	body     string
	named    []string // ids the request names itself, which a response may echo
}

func (c isoCall) String() string {
	kind := "full"
	if c.readOnly {
		kind = "read-only"
	}
	return fmt.Sprintf("%s %s %s (%s key of %s, X-Tenant-ID %s)", c.method, c.path, c.body, kind, c.key.name, c.tenant)
}

// refused returns the status that authentication and authorisation answer
// before anything else, or 0 when the call gets past them.
func (c isoCall) refused(scope string) int {
	if c.tenant != c.key.name {
		return http.StatusForbidden
	}
	if c.readOnly && !slices.Contains(isoReadOnlyScopes, scope) {
		return http.StatusForbidden
	}
	return 0
}

func (c isoCall) secret() string {
	if c.readOnly {
		return c.key.readOnly
	}
	return c.key.full
}

func (w *isoWorld) drawTenant(t *rapid.T, label string) *isoTenant {
	return w.tenants[rapid.IntRange(0, len(w.tenants)-1).Draw(t, label)]
}

func (w *isoWorld) drawOther(t *rapid.T, k *isoTenant) *isoTenant {
	others := w.others(k)
	return others[rapid.IntRange(0, len(others)-1).Draw(t, "otherTenant")]
}

func (w *isoWorld) others(k *isoTenant) []*isoTenant {
	var out []*isoTenant
	for _, o := range w.tenants {
		if o != k {
			out = append(out, o)
		}
	}
	return out
}

// drawCaller draws who sends a call with a key of tenant k: mostly the full
// key with k's X-Tenant-ID; at times the read-only key, at times another
// tenant's X-Tenant-ID or that of a tenant with no key at all.
func (w *isoWorld) drawCaller(t *rapid.T, k *isoTenant) isoCall {
	c := isoCall{key: k, readOnly: rapid.IntRange(0, 5).Draw(t, "readOnly") == 5, tenant: k.name}
	switch rapid.IntRange(0, 9).Draw(t, "header") {
	case 8:
		c.tenant = w.drawOther(t, k).name
	case 9:
		c.tenant = w.stranger
	}
	return c
}

// drawAnomaly returns one of the check's anomalies, of any tenant, or at
// times an id that no one has (nil).
func (w *isoWorld) drawAnomaly(t *rapid.T) (string, *isoAnomaly) {
	if len(w.all) == 0 || rapid.IntRange(0, 7).Draw(t, "unknownAnomaly") == 7 {
		return uuid.NewString(), nil
	}
	a := w.all[rapid.IntRange(0, len(w.all)-1).Draw(t, "anomaly")]
	return a.id, a
}

// drawAgent returns one of the check's agents: a shared one, a tenant's
// private one, or at times one that no one has; and the tenant it is private
// to, if any.
func (w *isoWorld) drawAgent(t *rapid.T) (string, *isoTenant) {
	i := rapid.IntRange(0, 5).Draw(t, "agent")
	switch {
	case i < len(w.shared):
		return w.shared[i], nil
	case i < len(w.shared)+len(w.tenants):
		k := w.tenants[i-len(w.shared)]
		return k.private, k
	}
	return uuid.NewString(), nil
}

// drawOnAnomaly draws a call on an anomaly: mostly with a key of its owner,
// at times with another tenant's key under that tenant's own X-Tenant-ID.
func (w *isoWorld) drawOnAnomaly(t *rapid.T) (isoCall, string, *isoAnomaly) {
	id, a := w.drawAnomaly(t)
	var k *isoTenant
	if a != nil {
		k = a.owner
	} else {
		k = w.drawTenant(t, "tenant")
	}
	if rapid.IntRange(0, 3).Draw(t, "byOtherTenant") == 3 {
		k = w.drawOther(t, k)
	}
	return w.drawCaller(t, k), id, a
}

// drawOnAgent draws a call on an agent: mostly one that an anomaly of the
// check concerns (one that prefer picks, when there is one), with a key of that
// anomaly's tenant; at times with another tenant's key, or on any agent of the
// check, or one no one has.
func (w *isoWorld) drawOnAgent(t *rapid.T, prefer func(*isoAnomaly) bool) (isoCall, string) {
	var agent string
	var k *isoTenant
	pool := slices.DeleteFunc(slices.Clone(w.all), func(a *isoAnomaly) bool { return !prefer(a) })
	if len(pool) == 0 {
		pool = w.all
	}
	if len(pool) > 0 && rapid.IntRange(0, 3).Draw(t, "agentOfAnomaly") != 3 {
		a := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "anomaly")]
		agent, k = a.agent, a.owner
	} else if agent, k = w.drawAgent(t); k == nil {
		k = w.drawTenant(t, "tenant")
	}
	if rapid.IntRange(0, 3).Draw(t, "byOtherTenant") == 3 {
		k = w.drawOther(t, k)
	}
	return w.drawCaller(t, k), agent
}

// step draws one action and its caller, sends it, checks the answer against
// the model and applies what it did to the model.
func (w *isoWorld) step(t *rapid.T) {
	action := "report" // until there is an anomaly, nothing else has anything to act on
	if len(w.all) > 0 {
		action = rapid.SampledFrom(isoActions).Draw(t, "action")
	}
	switch action {
	case "report":
		w.report(t)
	case "investigate":
		body := rapid.SampledFrom([]string{`{}`, `{"assignee":"bob","notes":"looking"}`}).Draw(t, "body")
		w.transition(t, "investigate", body, domain.ScopeAnomaliesWrite, func(a *isoAnomaly) int {
			if a.status != "open" {
				return http.StatusConflict
			}
			a.status = "investigating"
			return http.StatusOK
		})
	case "resolve":
		res := rapid.SampledFrom(isoResolveChoices).Draw(t, "resolution")
		w.transition(t, "resolve", `{"resolution":"`+res+`"}`, domain.ScopeAnomaliesResolve, func(a *isoAnomaly) int {
			if a.status != "open" && a.status != "investigating" {
				return http.StatusConflict
			}
			a.status, a.resolution = "resolved", res
			return http.StatusOK
		})
	case "dismiss":
		w.transition(t, "dismiss", `{"reason":"test traffic"}`, domain.ScopeAnomaliesResolve, func(a *isoAnomaly) int {
			if a.status != "open" && a.status != "investigating" {
				return http.StatusConflict
			}
			a.status = "dismissed"
			return http.StatusOK
		})
	case "restore":
		body := rapid.SampledFrom([]string{"", `{"notes":"rotated"}`}).Draw(t, "body")
		mitigated := func(a *isoAnomaly) bool { return a.resolution == "mitigated" && !a.released }
		w.agentCommand(t, "restore", body, mitigated, func(k *isoTenant, agent string) int {
			_, status, holds := k.agent(agent)
			if status == "revoked" {
				return http.StatusConflict
			}
			mitigated := 0
			for _, h := range holds {
				if h.Reason != "mitigated" {
					return http.StatusConflict
				}
				mitigated++
			}
			if mitigated == 0 {
				return http.StatusConflict
			}
			for _, a := range k.of(agent) {
				if a.resolution == "mitigated" {
					a.released = true
				}
			}
			return http.StatusOK
		})
	case "revoke":
		w.agentCommand(t, "revoke", `{"reason":"exfiltration"}`, func(*isoAnomaly) bool { return true }, func(k *isoTenant, agent string) int {
			if _, status, _ := k.agent(agent); status == "revoked" {
				return http.StatusConflict
			}
			k.revoked[agent] = true
			return http.StatusOK
		})
	case "getAnomaly":
		c, id, a := w.drawOnAnomaly(t)
		c.method, c.path, c.named = "GET", "/v1/anomalies/"+id, []string{id}
		want := w.anomalyStatus(c, domain.ScopeAnomaliesRead, a, http.StatusOK)
		r := w.send(t, c, want, a)
		if want == http.StatusOK {
			w.compareAnomaly(t, c, r.body, a)
		}
	case "events":
		c, id, a := w.drawOnAnomaly(t)
		c.method, c.path, c.named = "GET", "/v1/anomalies/"+id+"/events", []string{id}
		want := w.anomalyStatus(c, domain.ScopeAnomaliesRead, a, http.StatusOK)
		r := w.send(t, c, want, a)
		if items, _ := r.body["items"].([]any); want == http.StatusOK && len(items) != a.events {
			t.Fatalf("%v: %d events, want %d: %s", c, len(items), a.events, r.raw)
		}
	case "getAgent":
		c, agent := w.drawOnAgent(t, func(*isoAnomaly) bool { return true })
		c.method, c.path, c.named = "GET", "/v1/agents/"+agent, []string{agent}
		want := c.refused(domain.ScopeAgentsRead)
		if known, _, _ := c.key.agent(agent); want == 0 && known {
			want = http.StatusOK
		} else if want == 0 {
			want = http.StatusNotFound
		}
		r := w.sendAgent(t, c, want, agent)
		if want == http.StatusOK {
			w.compareAgent(t, c, c.key, agent, r)
		}
	case "list":
		w.list(t)
	}
}

// anomalyStatus is the status a call on anomaly a (nil: no such anomaly)
// answers when it gets past authentication and a is the caller's: ok.
func (w *isoWorld) anomalyStatus(c isoCall, scope string, a *isoAnomaly, ok int) int {
	if st := c.refused(scope); st != 0 {
		return st
	}
	if a == nil || a.owner != c.key {
		return http.StatusNotFound
	}
	return ok
}

func (w *isoWorld) report(t *rapid.T) {
	c := w.drawCaller(t, w.drawTenant(t, "tenant"))
	agent := rapid.SampledFrom(c.key.agents).Draw(t, "agent")
	sev := rapid.IntRange(0, 3).Draw(t, "severity")
	typ := rapid.SampledFrom(isoAnomalyTypes).Draw(t, "anomalyType")
	body := fmt.Sprintf(`{"agent_id":%q,"anomaly_type":%q,"severity":%q`, agent, typ, isoSeverities[sev])
	c.named = []string{agent}
	var ref *isoAnomaly
	if rapid.IntRange(0, 3).Draw(t, "withReference") == 3 {
		var id string
		id, ref = w.drawAnomaly(t)
		body += fmt.Sprintf(`,"references_anomaly_id":%q`, id)
		c.named = append(c.named, id)
	}
	c.method, c.path, c.body = "POST", "/v1/anomalies", body+"}"
	want := c.refused(domain.ScopeAnomaliesWrite)
	switch {
	case want != 0:
	case ref != nil && ref.owner != c.key, ref == nil && len(c.named) == 2:
		want = http.StatusBadRequest // a reference must name an anomaly of the tenant
	default:
		want = http.StatusCreated
	}
	r := w.send(t, c, want, ref)
	if want != http.StatusCreated {
		return
	}
	id, _ := r.body["id"].(string)
	if _, err := uuid.Parse(id); err != nil || w.owners[id] != "" {
		t.Fatalf("%v: id %q is not a new UUID", c, id)
	}
	a := &isoAnomaly{id: id, agent: agent, anomalyType: typ, severity: isoSeverities[sev], owner: c.key,
		containment: sev, status: "open", events: 1}
	if ref != nil {
		ref.referencedBy = append(ref.referencedBy, id)
	}
	c.key.anomalies = append(c.key.anomalies, a)
	w.all = append(w.all, a)
	w.owners[id] = c.key.name
	w.compareAnomaly(t, c, r.body, a)
	a.updatedAt, _ = r.body["updated_at"].(string)
}

// transition sends investigate, resolve or dismiss; decide applies the command
// to the caller's own anomaly in the model and returns the status it answers.
func (w *isoWorld) transition(t *rapid.T, cmd, body, scope string, decide func(*isoAnomaly) int) {
	c, id, a := w.drawOnAnomaly(t)
	c.method, c.path, c.body, c.named = "POST", "/v1/anomalies/"+id+"/"+cmd, body, []string{id}
	want := w.anomalyStatus(c, scope, a, 0)
	if want == 0 {
		want = decide(a)
	}
	r := w.send(t, c, want, a)
	switch want {
	case http.StatusOK:
		a.events++
		a.updatedAt = ""
		w.compareAnomaly(t, c, r.body, a)
		a.updatedAt, _ = r.body["updated_at"].(string)
	case http.StatusConflict:
		if d, _ := r.body["details"].(map[string]any); d["status"] != a.status {
			t.Fatalf("%v: conflict names status %v, want %s: %s", c, d["status"], a.status, r.raw)
		}
	}
}

// agentCommand sends restore or revoke; decide applies it to an agent the
// caller's tenant knows and returns the status it answers.
func (w *isoWorld) agentCommand(t *rapid.T, cmd, body string, prefer func(*isoAnomaly) bool, decide func(*isoTenant, string) int) {
	c, agent := w.drawOnAgent(t, prefer)
	c.method, c.path, c.body, c.named = "POST", "/v1/agents/"+agent+"/"+cmd, body, []string{agent}
	want := c.refused(domain.ScopeAgentsWrite)
	if known, _, _ := c.key.agent(agent); want == 0 && !known {
		want = http.StatusNotFound
	} else if want == 0 {
		want = decide(c.key, agent)
	}
	r := w.sendAgent(t, c, want, agent)
	if want == http.StatusOK {
		w.compareAgent(t, c, c.key, agent, r)
	}
}

func (w *isoWorld) list(t *rapid.T) {
	c := w.drawCaller(t, w.drawTenant(t, "tenant"))
	q := url.Values{}
	if st := rapid.SampledFrom(isoListStatuses).Draw(t, "status"); st != "" {
		q.Set("status", st)
	}
	if sev := rapid.SampledFrom(isoListSeverities).Draw(t, "severity"); sev != "" {
		q.Set("severity", sev)
	}
	if typ := rapid.SampledFrom(isoListTypes).Draw(t, "anomalyType"); typ != "" {
		q.Set("anomaly_type", typ)
	}
	if rapid.Bool().Draw(t, "byAgent") {
		agent, _ := w.drawAgent(t)
		q.Set("agent_id", agent)
		c.named = []string{q.Get("agent_id")}
	}
	limit := rapid.IntRange(1, 6).Draw(t, "limit")
	q.Set("limit", strconv.Itoa(limit))
	q.Set("created_after", w.since)
	c.method = "GET"
	want := c.refused(domain.ScopeAnomaliesRead)
	if want != 0 {
		c.path = "/v1/anomalies?" + q.Encode()
		w.send(t, c, want, nil)
		return
	}
	var expect []string
	for _, a := range slices.Backward(c.key.anomalies) {
		if (q.Get("status") == "" || a.status == q.Get("status")) && (q.Get("severity") == "" || a.severity == q.Get("severity")) &&
			(q.Get("anomaly_type") == "" || a.anomalyType == q.Get("anomaly_type")) && (q.Get("agent_id") == "" || a.agent == q.Get("agent_id")) {
			expect = append(expect, a.id)
		}
	}
	w.eventually(t, c, func() string {
		var got []string
		page := q
		for pages := 0; ; pages++ {
			c.path = "/v1/anomalies?" + page.Encode()
			r := w.send(t, c, http.StatusOK, nil)
			items, _ := r.body["items"].([]any)
			if len(items) > limit || pages > len(c.key.anomalies) {
				t.Fatalf("%v: %d items on a page of %d, or more pages than anomalies: %s", c, len(items), limit, r.raw)
			}
			for _, it := range items {
				m, _ := it.(map[string]any)
				id, _ := m["id"].(string)
				a := c.key.owns(id)
				if a == nil {
					t.Fatalf("%v: lists %s, not an anomaly of %s: %s", c, id, c.key.name, r.raw)
				}
				w.compareAnomaly(t, c, m, a)
				got = append(got, id)
			}
			next, _ := r.body["next_cursor"].(string)
			if next == "" {
				break
			}
			page = isoWithParam(q, "cursor", next)
		}
		if !slices.Equal(got, expect) {
			return fmt.Sprintf("%v: listed %v, want %v", c, got, expect)
		}
		return ""
	})
}

// isoWithParam returns a copy of q with name set to value.
func isoWithParam(q url.Values, name, value string) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	out.Set(name, value)
	return out
}

// eventually retries f, which returns what is wrong or "", for as long as a
// projection may take to catch up: lists may lag a command (DESIGN.md
// "Consistency"), though on one instance they should not.
func (w *isoWorld) eventually(t *rapid.T, c isoCall, f func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check verifies the model against the server: every tenant lists exactly its
// own anomalies as the model has them, and sees each agent it reports on with
// the status and holds that its own anomalies give it.
func (w *isoWorld) check(t *rapid.T) {
	for _, k := range w.tenants {
		c := isoCall{key: k, tenant: k.name, method: "GET", path: "/v1/anomalies?limit=200&created_after=" + url.QueryEscape(w.since)}
		w.eventually(t, c, func() string {
			r := w.send(t, c, http.StatusOK, nil)
			items, _ := r.body["items"].([]any)
			var got, want []string
			for _, it := range items {
				m, _ := it.(map[string]any)
				id, _ := m["id"].(string)
				got = append(got, id)
				if a := k.owns(id); a != nil {
					w.compareAnomaly(t, c, m, a)
				}
			}
			for _, a := range slices.Backward(k.anomalies) {
				want = append(want, a.id)
			}
			if !slices.Equal(got, want) {
				return fmt.Sprintf("tenant %s lists %v, want its own anomalies %v", k.name, got, want)
			}
			return ""
		})
		for _, agent := range k.agents {
			c := isoCall{key: k, readOnly: true, tenant: k.name, method: "GET", path: "/v1/agents/" + agent, named: []string{agent}}
			want := http.StatusNotFound
			if known, _, _ := k.agent(agent); known {
				want = http.StatusOK
			}
			if r := w.send(t, c, want, nil); want == http.StatusOK {
				w.compareAgent(t, c, k, agent, r)
			}
		}
	}
}

// compareAnomaly checks an anomaly as the server shows it against the model.
func (w *isoWorld) compareAnomaly(t *rapid.T, c isoCall, got map[string]any, a *isoAnomaly) {
	t.Helper()
	var resolution any
	if a.resolution != "" {
		resolution = a.resolution
	}
	want := map[string]any{"id": a.id, "anomaly_id": a.id, "agent_id": a.agent, "anomaly_type": a.anomalyType,
		"severity": a.severity, "status": a.status, "resolution": resolution, "auto_response": isoContainments[a.containment]}
	for f, v := range want {
		if got[f] != v {
			t.Fatalf("%v: anomaly %s has %s %v, want %v (tenant %s): %v", c, a.id, f, got[f], v, a.owner.name, got)
		}
	}
	if a.updatedAt != "" && got["updated_at"] != a.updatedAt {
		t.Fatalf("%v: anomaly %s has updated_at %v, want %s from its last command", c, a.id, got["updated_at"], a.updatedAt)
	}
	refs, ok := got["referenced_by"].([]any)
	if !ok {
		t.Fatalf("%v: anomaly %s has referenced_by %v, want an array", c, a.id, got["referenced_by"])
	}
	var rb []string
	for _, v := range refs {
		s, _ := v.(string)
		rb = append(rb, s)
	}
	if !slices.Equal(rb, a.referencedBy) {
		t.Fatalf("%v: anomaly %s referenced_by %v, want %v", c, a.id, rb, a.referencedBy)
	}
}

// compareAgent checks an agent response against the model of tenant k.
func (w *isoWorld) compareAgent(t *rapid.T, c isoCall, k *isoTenant, agent string, r response) {
	t.Helper()
	var got struct {
		AgentID string    `json:"agent_id"`
		Status  string    `json:"status"`
		Holds   []isoHold `json:"holds"`
	}
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatalf("%v: %v: %s", c, err, r.raw)
	}
	slices.SortFunc(got.Holds, func(a, b isoHold) int { return strings.Compare(a.AnomalyID, b.AnomalyID) })
	_, status, holds := k.agent(agent)
	for _, h := range got.Holds {
		if k.owns(h.AnomalyID) == nil {
			t.Fatalf("%v: agent %s held by %s, not an anomaly of tenant %s: %s", c, agent, h.AnomalyID, k.name, r.raw)
		}
	}
	if got.AgentID != agent || got.Status != status || !slices.Equal(got.Holds, holds) {
		t.Fatalf("%v: agent %s is %s held by %v, want %s held by %v (tenant %s's anomalies only)",
			c, agent, got.Status, got.Holds, status, holds, k.name)
	}
}

// isoSnapshot is what an anomaly's owner sees of it: the fields a command
// would change.
type isoSnapshot struct {
	status  int
	fields  string
	present bool
}

func (w *isoWorld) snapshot(t *rapid.T, a *isoAnomaly) isoSnapshot {
	if a == nil {
		return isoSnapshot{}
	}
	c := isoCall{key: a.owner, readOnly: true, tenant: a.owner.name, method: "GET", path: "/v1/anomalies/" + a.id}
	r := w.do(t, c)
	return isoSnapshot{r.status, fmt.Sprint(r.body["status"], r.body["resolution"], r.body["updated_at"],
		r.body["referenced_by"]), true}
}

// send sends c, expects status want and a body that names no anomaly (and no
// private agent) of a tenant other than the caller's unless the request named
// it; a refused call must leave the store as it was, and the anomaly it named,
// when another tenant owns it, unchanged as its owner sees it.
func (w *isoWorld) send(t *rapid.T, c isoCall, want int, target *isoAnomaly) response {
	t.Helper()
	// Only a command can change something; a refused one must not.
	refused := want >= 300 && c.method == "POST"
	var before uint64
	var owned isoSnapshot
	if refused {
		before = w.head(t)
		if target != nil && target.owner != c.key {
			owned = w.snapshot(t, target)
		}
	}
	r := w.do(t, c)
	if r.status != want {
		t.Fatalf("%v: %d %s, want %d", c, r.status, r.raw, want)
	}
	if code := isoCodes[r.status]; code != "" && r.body["code"] != code {
		t.Fatalf("%v: %s, want code %s", c, r.raw, code)
	}
	w.scan(t, c, r)
	if refused {
		if after := w.head(t); after != before {
			t.Fatalf("%v: answered %d but the store head moved from %d to %d", c, r.status, before, after)
		}
		if owned.present {
			if after := w.snapshot(t, target); after != owned {
				t.Fatalf("%v: tenant %s's anomaly %s changed from %+v to %+v", c, target.owner.name, target.id, owned, after)
			}
		}
	}
	return r
}

// sendAgent is send for a call on an agent: when the agent is another tenant's
// private one, its owner must see it unchanged after a refused call.
func (w *isoWorld) sendAgent(t *rapid.T, c isoCall, want int, agent string) response {
	t.Helper()
	var owner *isoTenant
	for _, o := range w.others(c.key) {
		if o.private == agent {
			owner = o
		}
	}
	if owner == nil || want < 300 {
		return w.send(t, c, want, nil)
	}
	before := w.agentSnapshot(t, owner, agent)
	r := w.send(t, c, want, nil)
	if after := w.agentSnapshot(t, owner, agent); after != before {
		t.Fatalf("%v: tenant %s's agent %s changed from %s to %s", c, owner.name, agent, before, after)
	}
	return r
}

// agentSnapshot is what tenant k sees of an agent: status code, effective
// status, holds and updated_at.
func (w *isoWorld) agentSnapshot(t *rapid.T, k *isoTenant, agent string) string {
	t.Helper()
	r := w.do(t, isoCall{key: k, readOnly: true, tenant: k.name, method: "GET", path: "/v1/agents/" + agent})
	return fmt.Sprint(r.status, " ", r.body["status"], " ", r.body["holds"], " ", r.body["updated_at"])
}

// scan fails when a response to c shows an anomaly id, or the private agent,
// of a tenant other than the caller's that the request did not name itself.
func (w *isoWorld) scan(t *rapid.T, c isoCall, r response) {
	t.Helper()
	for id, owner := range w.owners {
		if owner != c.key.name && !slices.Contains(c.named, id) && strings.Contains(r.raw, id) {
			t.Fatalf("%v: response shows tenant %s's anomaly %s: %s", c, owner, id, r.raw)
		}
	}
	for _, o := range w.others(c.key) {
		if !slices.Contains(c.named, o.private) && strings.Contains(r.raw, o.private) {
			t.Fatalf("%v: response shows tenant %s's agent %s: %s", c, o.name, o.private, r.raw)
		}
	}
}

func (w *isoWorld) head(t *rapid.T) uint64 {
	t.Helper()
	h, err := w.s.store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends c and returns the response; unlike server.do it fails the rapid
// check rather than the whole test, so that rapid can shrink a failure.
func (w *isoWorld) do(t *rapid.T, c isoCall) response {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, w.s.base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", c.secret())
	req.Header.Set("X-Tenant-ID", c.tenant)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("%v: body is not a JSON object: %q", c, raw)
	}
	return out
}
