package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	main "github.com/anomalyd/anomalyd/cmd/anomalyd"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

func (s *server) policyEvents(tenant string) []domain.PolicyChanged {
	s.t.Helper()
	recs, err := s.store.ReadStream(context.Background(), domain.PolicyStream(tenant), 0)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []domain.PolicyChanged
	for _, r := range recs {
		var d domain.PolicyChanged
		if err := json.Unmarshal(r.Data, &d); err != nil {
			s.t.Fatal(err)
		}
		if r.Actor.Kind != domain.ActorSystem {
			s.t.Fatalf("policy change actor = %+v", r.Actor)
		}
		out = append(out, d)
	}
	return out
}

func (s *server) autoResponse(key, severity string) string {
	s.t.Helper()
	r := s.do("POST", "/v1/anomalies", key, "acme",
		fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":%q}`, uuid.NewString(), severity))
	if r.status != 201 {
		s.t.Fatalf("report: %d %s", r.status, r.raw)
	}
	return r.body["auto_response"].(string)
}

func TestTenantPolicyFromKeysFileIsRecorded(t *testing.T) {
	forEachBackend(t, testTenantPolicyFromKeysFileIsRecorded)
}

func testTenantPolicyFromKeysFileIsRecorded(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	k := newKeys(t, dir)
	strict := domain.DefaultPolicy()
	strict[domain.SeverityMedium] = domain.ContainmentSuspended
	if err := auth.SetPolicy(dir+"/keys.json", "acme", strict); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, flags...)

	if got := s.autoResponse(k.full, "medium"); got != "suspended" {
		t.Fatalf("medium under the configured policy: %s, want suspended", got)
	}
	if evs := s.policyEvents("acme"); len(evs) != 1 || evs[0].AutoResponse[domain.SeverityMedium] != domain.ContainmentSuspended || evs[0].Source == "" {
		t.Fatalf("recorded policy changes = %+v, want one with its source", evs)
	}
	if r := s.do("POST", "/v1/anomalies", k.other, "globex",
		fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"medium"}`, uuid.NewString())); r.body["auto_response"] != "throttled" {
		t.Fatalf("another tenant keeps the default: %s", r.raw)
	}

	t.Run("ChangeWhileRunningIsRecordedAndApplied", func(t *testing.T) {
		lenient := domain.DefaultPolicy()
		lenient[domain.SeverityCritical] = domain.ContainmentSuspended
		if err := auth.SetPolicy(dir+"/keys.json", "acme", lenient); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(s.policyEvents("acme")) < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the changed keys file was not recorded as a policy change")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The recorded change reaches the read model an instant later.
		for s.autoResponse(k.full, "critical") != "suspended" {
			if time.Now().After(deadline) {
				t.Fatal("critical anomalies still quarantine after the policy change")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := s.autoResponse(k.full, "medium"); got != "throttled" {
			t.Fatalf("medium after the change: %s, want throttled", got)
		}
	})

	t.Run("RestartRecordsNothingNew", func(t *testing.T) {
		before := len(s.policyEvents("acme"))
		s.stop()
		s = start(t, dir, flags...)
		if got := len(s.policyEvents("acme")); got != before {
			t.Fatalf("restart recorded %d policy changes, want none", got-before)
		}
	})

	t.Run("StartRefusesPolicyThatRevokes", func(t *testing.T) {
		s.stop()
		f, err := auth.ReadFile(dir + "/keys.json")
		if err != nil {
			t.Fatal(err)
		}
		f.Policies["acme"]["high"] = "revoked"
		b, _ := json.Marshal(f)
		if err := writeFileAtomic(dir+"/keys.json", b); err != nil {
			t.Fatal(err)
		}
		cfg, err := main.ParseConfig(append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--nats-listen", "off"}, flags...),
			func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		m := main.NewMain(cfg, slog.New(slog.DiscardHandler))
		err = m.Open(context.Background())
		m.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), "policies") || !strings.Contains(err.Error(), "cannot revoke") {
			t.Fatalf("start-up with a policy that revokes on report: %v, want an error naming the policy", err)
		}
	})
}
