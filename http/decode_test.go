package http

import (
	"errors"
	"io"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// decodeBodies are request bodies of every shape decodeJSON meets: plain ones
// (the fast path), and ones only the strict path may judge.
var decodeBodies = []string{
	`{"agent_id":"0b6e8f3a-1c2d-4e5f-9a6b-7c8d9e0f1a2b","anomaly_type":"rate_spike","severity":"high","details":{"rps":950,"source":"x"}}`,
	`{ "resolution" : "false_positive" , "notes" : "checked" }`,
	`{"resolution":"mitigated","notes":null,"resolved_by":"alice"}`,
	`{"details":{ "a" : [1, 2, {"b": null}] , "resolution": 1 }, "severity": "low"}`,
	`{}`,
	` {"reason":"dup"} `,
	`{"notes":"x"}`,
	`{"assignee":"bob","notes":"look"}`,
	`{"resolution":"a","resolution":"b"}`,
	`{"RESOLUTION":"mitigated"}`,
	`{"resolutio\u006e":"mitigated"}`,
	`{"notes":"caf\u00e9"}`,
	`{"notes":"café"}`,
	"{\"notes\":\"\xff\"}",
	`{"notes":"\ud800"}`,
	`{"unknown":1}`,
	`{"notes":1}`,
	`{"details":"not an object"}`,
	`{"details":[1,2]}`,
	`{"resolution":"mitigated"} {}`,
	`{"resolution":"mitigated"}]`,
	`{"resolution":"mitigated",}`,
	`{"resolution"}`,
	`{"resolution":`,
	`[]`,
	`null`,
	`"x"`,
	``,
	`{`,
	`{"a":{"b":{"c":{}}}}`,
}

// decodeTargets are the request types decodeJSON decodes into.
func decodeTargets() []any {
	return []any{&reportRequest{}, &resolveRequest{}, &investigateRequest{}, &dismissRequest{},
		&restoreRequest{}, &revokeRequest{}}
}

// checkDecodePathsAgree decodes body with decodeJSON and with the strict path
// alone into each request type, and fails unless both give the same value and
// the same error.
func checkDecodePathsAgree(t *testing.T, body string) {
	t.Helper()
	for _, target := range decodeTargets() {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		fast := target // a fresh value of its type
		fastErr := decodeJSON(r, fast)
		strict := reflect.New(reflect.TypeOf(target).Elem()).Interface()
		strictErr := decodeStrict([]byte(body), strict, jsonNames(strict))
		if describeErr(fastErr) != describeErr(strictErr) {
			t.Errorf("%T from %q: decodeJSON says %s, the strict decode %s", target, body, describeErr(fastErr), describeErr(strictErr))
			continue
		}
		if !reflect.DeepEqual(fast, strict) {
			t.Errorf("%T from %q: decodeJSON gives %+v, the strict decode %+v", target, body, fast, strict)
		}
	}
}

// describeErr words an error with its HTTP status, so that two errors compare
// by what the client would see.
func describeErr(err error) string {
	if err == nil {
		return "nil"
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.Error() + " (status " + strconv.Itoa(se.status) + ")"
	}
	return err.Error()
}

// TestDecodePathsAgree: the fast path of decodeJSON decodes what the strict
// path would, into the same value, and leaves every refusal to the strict path.
func TestDecodePathsAgree(t *testing.T) {
	for _, body := range decodeBodies {
		checkDecodePathsAgree(t, body)
	}
}

// FuzzDecodePathsAgree is TestDecodePathsAgree on any body.
func FuzzDecodePathsAgree(f *testing.F) {
	for _, body := range decodeBodies {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) { checkDecodePathsAgree(t, body) })
}

func TestPlainObjectVouchesOnlyForPlainObjects(t *testing.T) {
	names := jsonNames(&resolveRequest{})
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"resolution":"mitigated"}`, true},
		{` { "resolution" : "mitigated", "notes" : null } `, true},
		{`{}`, true},
		{`{"resolution":{"unknown":{"deeper":[1,{"x":2}]}}}`, true}, // only the top level's keys are fields
		{`{"resolution":"a","resolution":"b"}`, false},              // a duplicate
		{`{"Resolution":"mitigated"}`, false},                       // another case
		{`{"unknown":1}`, false},
		{`{"resolutio\u006e":"mitigated"}`, false}, // an escape
		{`{"notes":"café"}`, false},                // not ASCII
		{`{"resolution":"mitigated"} {}`, false},   // two values
		{`{"resolution":"mitigated",}`, false},     // invalid
		{`[{"resolution":"mitigated"}]`, false},    // not an object
		{`null`, false},
		{``, false},
	} {
		if got := plainObject([]byte(tc.body), names); got != tc.want {
			t.Errorf("plainObject(%q) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

// BenchmarkDecodeJSON decodes the body of a report and of a resolve as the
// handlers do, without the rest of the request.
func BenchmarkDecodeJSON(b *testing.B) {
	for _, bc := range []struct {
		name, body string
		target     func() any
	}{
		{"report", decodeBodies[0], func() any { return &reportRequest{} }},
		{"resolve", `{"resolution":"false_positive"}`, func() any { return &resolveRequest{} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set("Content-Type", "application/json")
			body := strings.NewReader(bc.body)
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(bc.body)
				r.Body = io.NopCloser(body)
				if err := decodeJSON(r, bc.target()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
