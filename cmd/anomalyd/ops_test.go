package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	main "github.com/anomalyd/anomalyd/cmd/anomalyd"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/google/uuid"
)

func (s *server) get(path string) (int, string) {
	s.t.Helper()
	res, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	return res.StatusCode, readAll(s.t, res)
}

// metric returns the value of the first sample whose line matches name and all
// the given label pairs, and false when there is none.
func metric(text, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

func TestMetricsAfterAnEndToEndRun(t *testing.T) {
	dir, flags := newEnv(t, "jetstream")
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	id := s.report(k.full, uuid.NewString(), "high")
	s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"false_positive"}`, 200)
	s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"mitigated"}`, 409)
	s.command(k.full, "/v1/anomalies/"+id+"/resolve", `{"resolution":"oops"}`, 400)
	s.settle(k.full) // the effects of both commands are out

	var text string
	for deadline := time.Now().Add(10 * time.Second); ; {
		var status int
		status, text = s.get("/metrics")
		if status != 200 {
			t.Fatalf("/metrics: %d", status)
		}
		if lag, ok := metric(text, "anomalyd_projection_lag", `projection="effects"`); ok && lag == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	expect := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"anomalyd_http_request_duration_seconds_count", []string{`route="/v1/anomalies/{anomalyId}/resolve"`, `status="200"`}, 1},
		{"anomalyd_http_request_duration_seconds_count", []string{`route="/v1/anomalies"`, `status="201"`}, 2},
		{"anomalyd_commands_total", []string{`command="resolve"`, `outcome="ok"`}, 1},
		{"anomalyd_commands_total", []string{`command="resolve"`, `outcome="conflict"`}, 1},
		{"anomalyd_commands_total", []string{`command="resolve"`, `outcome="invalid"`}, 1},
		{"anomalyd_commands_total", []string{`command="report"`, `outcome="ok"`}, 2},
		{"anomalyd_events_appended_total", []string{`type="anomaly.resolved"`, `outcome="ok"`}, 1},
		{"anomalyd_events_appended_total", []string{`type="anomaly.reported"`, `outcome="ok"`}, 2},
		{"anomalyd_effects_total", []string{`outcome="published"`}, 3},
		// The first resolve starts on the state kept from the report; the
		// refused one finds none (a resolved anomaly's state is not kept)
		// and loads.
		{"anomalyd_command_cache_hits_total", nil, 1},
		{"anomalyd_command_anomaly_loads_total", nil, 1},
		{"anomalyd_command_cache_states", nil, 1},
		{"anomalyd_projection_position", []string{`projection="read_model"`}, 3},
		{"anomalyd_store_head_position", nil, 3},
		{"anomalyd_store_up", nil, 1},
		{"anomalyd_nats_connected", nil, 1},
		{"go_goroutines", nil, 1},
	}
	for _, e := range expect {
		if v, ok := metric(text, e.name, e.labels...); !ok || v < e.min {
			t.Errorf("%s%v = %v (found %v), want at least %v", e.name, e.labels, v, ok, e.min)
		}
	}
	if v, ok := metric(text, "anomalyd_projection_lag", `projection="read_model"`); !ok || v != 0 {
		t.Errorf("read model lag = %v (found %v), want 0 after the run", v, ok)
	}
	if strings.Contains(text, "acme") || strings.Contains(text, "key_") {
		t.Error("the metrics name a tenant or a key")
	}
}

func TestHealthAndReadinessFollowNATS(t *testing.T) {
	natsDir := t.TempDir()
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: natsDir, Host: "127.0.0.1", Port: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(url, "nats://"))
	port, _ := strconv.Atoi(portText)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	dir := t.TempDir()
	k := newKeys(t, dir)
	s := start(t, dir, "--nats-url", url)
	s.report(k.full, uuid.NewString(), "high")

	ready := func(want int) map[string]any {
		t.Helper()
		var body map[string]any
		for deadline := time.Now().Add(20 * time.Second); ; {
			status, text := s.get("/readyz")
			json.Unmarshal([]byte(text), &body)
			if status == want {
				if regexp.MustCompile(`acme|globex|key_`).MatchString(text) {
					t.Fatalf("/readyz reveals tenants or keys: %s", text)
				}
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz stayed %d (%s), want %d", status, text, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if status, text := s.get("/healthz"); status != 200 || !strings.Contains(text, `"ok"`) {
		t.Fatalf("/healthz: %d %s", status, text)
	}
	ready(200)

	ns.Shutdown()
	ns.WaitForShutdown()
	// The store check may fail a moment before the client notices the
	// disconnection: wait for both.
	for deadline := time.Now().Add(20 * time.Second); ; {
		body := ready(503)
		if checks, _ := body["checks"].(map[string]any); checks["nats"] == "disconnected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not-ready checks = %v, want nats disconnected", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _ := s.get("/healthz"); status != 200 {
		t.Fatalf("/healthz while NATS is down: %d; the process is alive", status)
	}

	ns, err = jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: natsDir, Host: "127.0.0.1", Port: port}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ready(200)
	// And it serves again: commands go through once NATS is back.
	s.report(k.full, uuid.NewString(), "low")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// One JSON log line per request, with route, status, duration, tenant and
// principal; the trace id of an error response is on its line; no secret is.
func TestRequestLogLines(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t, dir)
	cfg, err := main.ParseConfig([]string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--nats-listen", "off", "--log-format", "json"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	m := main.NewMain(cfg, main.NewLogger(cfg, &logs))
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	s := &server{t: t, m: m, base: "http://" + m.HTTPAddr()}
	ok := s.do("POST", "/v1/anomalies", k.full, "acme", fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"low"}`, uuid.NewString()))
	bad := s.do("POST", "/v1/anomalies/"+uuid.NewString()+"/resolve", k.full, "acme", `{"resolution":"oops"}`)
	if ok.status != 201 || bad.status != 400 {
		t.Fatalf("statuses %d, %d", ok.status, bad.status)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] != "request" {
			continue
		}
		for _, f := range []string{"route", "status", "duration", "tenant", "principal", "trace_id", "method"} {
			if _, ok := rec[f]; !ok {
				t.Errorf("request line without %s: %s", f, line)
			}
		}
		if rec["trace_id"] == bad.body["trace_id"] {
			found = rec["status"] == float64(400) && rec["route"] == "/v1/anomalies/{anomalyId}/resolve" && rec["tenant"] == "acme"
		}
	}
	if !found {
		t.Errorf("no request line carries the error's trace id %v:\n%s", bad.body["trace_id"], logs.String())
	}
	if strings.Contains(logs.String(), k.full) {
		t.Error("an API key secret is in the log")
	}
}

// A known /v1 path with another method is 405, in the documented error body.
func TestMethodNotAllowedUnderV1(t *testing.T) {
	dir, flags := newEnv(t, "jetstream")
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	id := uuid.NewString()
	for _, c := range []struct{ method, path string }{
		{"DELETE", "/v1/anomalies/" + id},
		{"GET", "/v1/anomalies/" + id + "/resolve"},
		{"PUT", "/v1/agents/" + id + "/restore"},
	} {
		r := s.do(c.method, c.path, k.full, "acme", "")
		if r.status != http.StatusMethodNotAllowed || r.body["trace_id"] == "" {
			t.Errorf("%s %s: %d %s, want 405", c.method, c.path, r.status, r.raw)
		}
	}
}
