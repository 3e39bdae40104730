package domain_test

import (
	"testing"

	"github.com/anomalyd/anomalyd/domain"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name     string
		in       map[string]string
		wantCode string
		want     string
	}{
		{"DefaultsFillTheGaps", map[string]string{"medium": "suspended"}, "", "low=none medium=suspended high=suspended critical=quarantined"},
		{"EmptyIsTheDefault", map[string]string{}, "", "low=none medium=throttled high=suspended critical=quarantined"},
		{"InvalidWhenSeverityUnknown", map[string]string{"severe": "none"}, domain.EINVALID, ""},
		{"InvalidWhenContainmentUnknown", map[string]string{"low": "jail"}, domain.EINVALID, ""},
		{"InvalidWhenAutoResponseRevokes", map[string]string{"critical": "revoked"}, domain.EINVALID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := domain.ParsePolicy(tt.in)
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if err == nil && p.String() != tt.want {
				t.Fatalf("policy = %s, want %s", p, tt.want)
			}
		})
	}
}

func TestPolicyChange(t *testing.T) {
	strict, err := domain.ParsePolicy(map[string]string{"low": "throttled"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("NothingRecordedForThePolicyInForce", func(t *testing.T) {
		tp, _ := domain.LoadPolicy(tenant, nil)
		changed, err := tp.Change(domain.DefaultPolicy(), "test", meta(1))
		if err != nil || changed || len(tp.Changes()) != 0 {
			t.Fatalf("changed = %v, err = %v, events %d", changed, err, len(tp.Changes()))
		}
	})
	t.Run("ChangeRecordedAndFolded", func(t *testing.T) {
		tp, _ := domain.LoadPolicy(tenant, nil)
		changed, err := tp.Change(strict, "keys file", meta(1))
		if err != nil || !changed {
			t.Fatalf("changed = %v, err = %v", changed, err)
		}
		evs := tp.Changes()
		if len(evs) != 1 || evs[0].Type != domain.EventPolicyChanged || evs[0].Stream != domain.PolicyStream(tenant) || tp.LoadedVersion() != 0 {
			t.Fatalf("events = %+v", evs)
		}
		again, err := domain.LoadPolicy(tenant, evs)
		if err != nil || !again.Policy().Equal(strict) {
			t.Fatalf("reloaded policy = %v, %v", again.Policy(), err)
		}
		if changed, _ := again.Change(strict, "keys file", meta(2)); changed {
			t.Fatal("the same policy recorded twice")
		}
	})
	t.Run("InvalidWhenAutoResponseRevokes", func(t *testing.T) {
		tp, _ := domain.LoadPolicy(tenant, nil)
		bad := domain.DefaultPolicy()
		bad[domain.SeverityHigh] = domain.ContainmentRevoked
		if _, err := tp.Change(bad, "test", meta(1)); domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("err = %v, want INVALID_INPUT", err)
		}
	})
}
