package domain_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// fuzzTokenOf is the reference for the token syntaxes of DESIGN.md: between 1
// and 64 bytes, each one of allowed.
func fuzzTokenOf(s, allowed string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			return false
		}
	}
	return true
}

const (
	fuzzDigits = "0123456789"
	fuzzLower  = "abcdefghijklmnopqrstuvwxyz"
	fuzzUpper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// FuzzValidTenant checks ValidTenant against the reference: [A-Za-z0-9_-]{1,64}.
func FuzzValidTenant(f *testing.F) {
	for _, s := range []string{
		"acme", "ACME", "a", "a_b-C9", "-", "_", strings.Repeat("t", 64), strings.Repeat("t", 65), "",
		"acme\n", "\nacme", "acme ", "ac me", "acme.eu", "acme/x", "acmé", "ａｃｍｅ", "\x00", "acme\x00", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := fuzzTokenOf(s, fuzzDigits+fuzzLower+fuzzUpper+"_-")
		if got := domain.ValidTenant(s); got != want {
			t.Fatalf("ValidTenant(%q) = %v, want %v", s, got, want)
		}
	})
}

// FuzzValidAnomalyType checks ValidAnomalyType against the reference:
// [a-z0-9_.-]{1,64}, which every known type matches.
func FuzzValidAnomalyType(f *testing.F) {
	for _, s := range []string{
		"rate_spike", "scope_violation", "trust_drop", "pattern_deviation", "geographic_anomaly",
		"x.y-z_0", ".", "-", strings.Repeat("a", 64), strings.Repeat("a", 65), "", "Rate_Spike", "rate spike",
		"rate_spike\n", "rate/spike", "räte", "\x00", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := fuzzTokenOf(s, fuzzDigits+fuzzLower+"_.-")
		if got := domain.ValidAnomalyType(s); got != want {
			t.Fatalf("ValidAnomalyType(%q) = %v, want %v", s, got, want)
		}
	})
}

// fuzzDefaultPolicy is the default policy as DESIGN.md states it.
var fuzzDefaultPolicy = map[string]string{
	"low": "none", "medium": "throttled", "high": "suspended", "critical": "quarantined",
}

// FuzzParsePolicy checks ParsePolicy on a policy of two entries (one when the
// severities are equal): it accepts exactly known severities mapped to a
// containment an auto-response may apply (not "revoked"), and returns the
// complete policy, the given entries over the defaults.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range [][4]string{
		{"low", "none", "medium", "throttled"},
		{"high", "quarantined", "critical", "suspended"},
		{"medium", "suspended", "medium", "none"},
		{"critical", "revoked", "low", "none"},
		{"High", "suspended", "low", "none"},
		{"high", "Suspended", "low", "none"},
		{"", "", "low", "none"},
		{"low", "unknown", "low", "none"},
		{"urgent", "suspended", "low", "none"},
		{"low", "none ", "low\x00", "none"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, sev1, name1, sev2, name2 string) {
		in := map[string]string{sev1: name1, sev2: name2}
		p, err := domain.ParsePolicy(in)

		valid := true
		for sev, name := range in {
			_, knownSeverity := fuzzDefaultPolicy[sev]
			switch name {
			case "none", "throttled", "suspended", "quarantined":
			default:
				valid = false
			}
			valid = valid && knownSeverity
		}
		if (err == nil) != valid {
			t.Fatalf("ParsePolicy(%q) error %v, want valid %v", in, err, valid)
		}
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Fatalf("ParsePolicy(%q) error code %s, want %s", in, code, domain.EINVALID)
			}
			return
		}
		if len(p) != len(fuzzDefaultPolicy) {
			t.Fatalf("ParsePolicy(%q) = %v, want every severity", in, p)
		}
		for sev, def := range fuzzDefaultPolicy {
			want := def
			if name, ok := in[sev]; ok {
				want = name
			}
			s := domain.Severity(sev)
			if p[s].String() != want || p.AutoResponse(s) != p[s] {
				t.Fatalf("ParsePolicy(%q): %s is %s (auto-response %s), want %s", in, sev, p[s], p.AutoResponse(s), want)
			}
		}
		if !p.Equal(p.Complete()) {
			t.Fatalf("ParsePolicy(%q) = %v is not complete", in, p)
		}
	})
}

// fuzzStoredEvent returns an event the domain recorded, as a store keeps it.
func fuzzStoredEvent(f *testing.F) []byte {
	f.Helper()
	m := domain.Meta{
		EventID: uuid.MustParse("3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a"),
		At:      time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("CET", 3600)),
		Actor:   domain.Actor{ID: "key_fuzz", Kind: domain.ActorAPIKey},
	}
	desc := "a <b> & \u2028 é"
	a, err := domain.Report(domain.ReportAnomaly{
		Tenant: "acme", AnomalyID: uuid.MustParse("6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7"),
		AgentID: uuid.MustParse("0b6e8f3a-1c2d-4e5f-9a6b-7c8d9e0f1a2b"), AnomalyType: "rate_spike",
		Severity: domain.SeverityHigh, Description: &desc, Details: json.RawMessage(`{"k": [1, 1e999, "<"]}`),
	}, domain.DefaultPolicy(), m)
	if err != nil {
		f.Fatalf("report: %v", err)
	}
	b, err := eventstore.MarshalEvent(a.Changes()[0])
	if err != nil {
		f.Fatalf("marshal: %v", err)
	}
	return b
}

// FuzzUnmarshalEvent feeds arbitrary bytes to UnmarshalEvent: it never panics,
// refuses with INTERNAL_ERROR, and an event it accepts has a whole envelope and
// survives the store's encoding: MarshalEvent and UnmarshalEvent give the same
// envelope back, and from then on the same bytes and the same hash.
func FuzzUnmarshalEvent(f *testing.F) {
	stored := fuzzStoredEvent(f)
	f.Add(stored)
	env := `"event_id":"3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a","type":"anomaly.resolved","category":"anomaly","stream_id":"x","tenant_id":"acme"`
	reported := strings.Replace(env, "anomaly.resolved", "anomaly.reported", 1)
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"event"`, `{"version":1}`,
		`{` + env + `,"version":1}`,
		`{` + env + `,"version":0}`,
		`{` + env + `,"version":-1}`,
		`{` + env + `,"version":1e3}`,
		`{` + env + `,"version":18446744073709551615}`,
		`{` + env + `,"version":18446744073709551616}`,
		`{` + env + `,"version":1,"data":null,"actor":null,"occurred_at":null}`,
		`{` + env + `,"version":1,"data":{"a":1,"a":2},"actor":{"id":"x","kind":"api_key","extra":true}}`,
		`{` + env + `,"version":1,"data":"\u003cb\u003e <b> \u2028 ` + "\xff\u2028" + `","occurred_at":"2026-01-02T03:04:05.999999999+14:00"}`,
		`{` + env + `,"version":1,"occurred_at":"2026-01-02"}`,
		`{` + env + `,"version":1,"event_id":"00000000-0000-0000-0000-000000000000"}`,
		`{` + env + `,"version":1,"event_id":"{3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a}"}`,
		`{` + env + `,"version":1,"EVENT_ID":"3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5b","Version":2}`,
		`{` + env + `,"version":1,"prev_hash":"","hash":5}`,
		`{` + env + `,"version":1} trailing`,
		`{` + env + `,"version":1,"data":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`,
		string(stored[:len(stored)/2]),
		`{` + env + `,"version":1,"schema_version":1,"data":{}}`,
		`{` + env + `,"version":1,"schema_version":2,"data":{}}`,
		`{` + env + `,"version":1,"schema_version":0,"data":{}}`,
		`{` + reported + `,"version":1,"data":{"details":null,"severity":"high","auto_response":"suspended"}}`,
		`{` + reported + `,"version":1,"data":{"description":"\u003cb\u003e","details":{"k":1e999}}}`,
		`{` + reported + `,"version":1,"data":null}`,
		`{` + reported + `,"version":1,"data":[]}`,
		`{` + reported + `,"version":1,"schema_version":2,"data":{"details":null}}`,
		`{` + reported + `,"version":1,"schema_version":3,"data":{}}`,
		`{` + reported + `,"version":1,"schema_version":2,"data":{"AGENT_ID":"3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a","agent_id":"3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5b","Severity":"high","auto_response":"suspended","auto_response":"throttled","description":"\ud800"}}`,
		`{` + strings.Replace(env, "anomaly.resolved", "agent.restored", 1) + `,"version":1,"data":{"agent_id":"3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a","released":["3d6f0a8e-2b1c-4d5e-8f9a-0b1c2d3e4f5a",null],"notes":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := eventstore.UnmarshalEvent(b)
		fuzzSameAsEncodingJSON(t, b, e, err)
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.EINTERNAL {
				t.Fatalf("UnmarshalEvent error code %s, want %s: %v", code, domain.EINTERNAL, err)
			}
			return
		}
		if e.ID == uuid.Nil || e.Type == "" || e.TenantID == "" || e.Stream.Tenant != e.TenantID ||
			e.Stream.Category == "" || e.Stream.ID == "" || e.Version == 0 {
			t.Fatalf("UnmarshalEvent accepted an incomplete envelope: %+v", e)
		}

		out, err := eventstore.MarshalEvent(e)
		if err != nil {
			t.Fatalf("an accepted event does not marshal again: %v", err)
		}
		e2, err := eventstore.UnmarshalEvent(out)
		if err != nil {
			t.Fatalf("MarshalEvent wrote what UnmarshalEvent refuses: %v: %s", err, out)
		}
		fuzzSameEnvelope(t, e, e2)

		// From the store's own encoding on, nothing changes at all.
		out2, err := eventstore.MarshalEvent(e2)
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("a second round trip changed the bytes (%v):\n%s\n%s", err, out, out2)
		}
		if e3, err := eventstore.UnmarshalEvent(out2); err != nil || domain.HashEvent(e3) != domain.HashEvent(e2) {
			t.Fatalf("a second round trip changed the hash (%v)", err)
		}
	})
}

// fuzzSameAsEncodingJSON checks the stores' codec against encoding/json, the
// reference it stands in for: the same input is accepted or refused by both,
// and an accepted one is the same event with the same data and hash.
func fuzzSameAsEncodingJSON(t *testing.T, b []byte, got domain.Event, gotErr error) {
	t.Helper()
	var w domain.Envelope
	want, wantErr := domain.Event{}, json.Unmarshal(b, &w)
	if wantErr == nil {
		want, wantErr = domain.RestoreEvent(w, nil)
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("the codec says %v, encoding/json says %v", gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	fuzzSameEnvelope(t, want, got)
	if !bytes.Equal(want.Data, got.Data) || domain.HashEvent(want) != domain.HashEvent(got) {
		t.Fatalf("the codec read data %s, encoding/json %s", got.Data, want.Data)
	}
	// The folds decode the data with the codec's decoder: they must make of it
	// what they make of it with encoding/json.
	var sw, sg domain.AnomalyState
	errW, errG := sw.Apply(want), sg.Apply(got)
	if (errW == nil) != (errG == nil) || !reflect.DeepEqual(sw, sg) {
		t.Fatalf("anomaly fold: codec %+v (%v), encoding/json %+v (%v)", sg, errG, sw, errW)
	}
	var cw, cg domain.AgentContainment
	errW, errG = cw.Apply(want), cg.Apply(got)
	if (errW == nil) != (errG == nil) || !reflect.DeepEqual(cw, cg) {
		t.Fatalf("agent fold: codec %+v (%v), encoding/json %+v (%v)", cg, errG, cw, errW)
	}
}

// fuzzSameEnvelope checks that b carries what a does: the same fields, the same
// instant, and data that decodes to the same JSON value (a missing data is null).
func fuzzSameEnvelope(t *testing.T, a, b domain.Event) {
	t.Helper()
	if a.ID != b.ID || a.Type != b.Type || a.Stream != b.Stream || a.Version != b.Version ||
		a.TenantID != b.TenantID || a.Actor != b.Actor || a.PrevHash != b.PrevHash || a.Hash != b.Hash {
		t.Fatalf("round trip changed the envelope:\n%+v\n%+v", a, b)
	}
	if !a.OccurredAt.Equal(b.OccurredAt) {
		t.Fatalf("round trip changed occurred_at from %v to %v", a.OccurredAt, b.OccurredAt)
	}
	if da, db := fuzzJSONValue(t, a.Data), fuzzJSONValue(t, b.Data); !reflect.DeepEqual(da, db) {
		t.Fatalf("round trip changed data from %s to %s", a.Data, b.Data)
	}
}

func fuzzJSONValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("data %q does not decode: %v", raw, err)
	}
	return v
}
