package main_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	main "github.com/anomalyd/anomalyd/cmd/anomalyd"
	"github.com/google/uuid"
)

func TestRateLimitPerTenant(t *testing.T) { forEachBackend(t, testRateLimitPerTenant) }

func testRateLimitPerTenant(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	s := start(t, dir, append(flags, "--rate-limit", "0.5", "--rate-burst", "3")...)
	id := uuid.NewString()
	for i := range 3 {
		if r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", ""); r.status != http.StatusNotFound {
			t.Fatalf("request %d within the burst: %d %s", i, r.status, r.raw)
		}
	}
	r := s.do("GET", "/v1/anomalies/"+id, k.full, "acme", "")
	if r.status != http.StatusTooManyRequests || r.body["code"] != "LIMIT_EXCEEDED" {
		t.Fatalf("request over the limit: %d %s, want 429 LIMIT_EXCEEDED", r.status, r.raw)
	}
	if sec, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || sec < 1 || sec > 2 {
		t.Fatalf("Retry-After = %q, want the whole seconds until a token is back (1-2)", r.header.Get("Retry-After"))
	}
	// Another tenant has a bucket of its own.
	if r := s.do("GET", "/v1/anomalies/"+id, k.other, "globex", ""); r.status != http.StatusNotFound {
		t.Fatalf("another tenant was limited too: %d", r.status)
	}
	// A refused command changes nothing.
	if r := s.do("POST", "/v1/anomalies", k.full, "acme", `{"agent_id":"`+uuid.NewString()+`","anomaly_type":"rate_spike","severity":"low"}`); r.status != http.StatusTooManyRequests {
		t.Fatalf("report over the limit: %d", r.status)
	}
	if h := s.head(); h != 0 {
		t.Fatalf("a limited report reached the store (head %d)", h)
	}
}

func TestRateLimitSettingsValidated(t *testing.T) {
	for _, args := range [][]string{{"--rate-limit", "-1"}, {"--rate-limit", "5", "--rate-burst", "0"}, {"--rate-limit", "NaN"}} {
		_, err := main.ParseConfig(args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--rate-") {
			t.Errorf("%v: err = %v, want one naming the setting", args, err)
		}
	}
	if _, err := main.ParseConfig(nil, func(n string) string {
		return map[string]string{"ANOMALYD_RATE_LIMIT": "fast"}[n]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "ANOMALYD_RATE_LIMIT") {
		t.Errorf("bad environment value: err = %v", err)
	}
}
