package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	sjson "github.com/segmentio/encoding/json"
)

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 64 << 10

// decodeJSON decodes the request body strictly into v: JSON content type, at most
// MaxBodyBytes, no unknown fields, exactly one value. Its errors are 415, 413 or
// INVALID_INPUT.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &statusError{status: http.StatusUnsupportedMediaType,
				err: domain.Errorf(domain.EINVALID, "Content-Type must be application/json")}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	names := jsonNames(v)
	if plainObject(body, names) && sjson.Unmarshal(body, v) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero() // what a failed fast decode may have set
	return decodeStrict(body, v, names)
}

// plainObject reports whether the strict decode would find nothing to refuse
// in body's shape, so that a plain decode reads it as the strict one would:
// body is valid JSON (to encoding/json) in ASCII without escapes, which every
// parser reads alike, and an object whose keys are each one of names, once.
// Such a body is decoded with segmentio/encoding/json, which reads it as
// encoding/json does (a differential fuzz target checks it) in a fraction of
// the time. A body it does not vouch for, or that does not decode, takes
// decodeStrict, which walks it token by token and words the error. That walk
// took 11 µs and 77 allocations for a report's body (BenchmarkDecodeJSON).
func plainObject(body []byte, names []string) bool {
	for _, c := range body {
		if c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	if !json.Valid(body) {
		return false
	}
	var t sjson.Tokenizer
	t.Reset(body)
	defer t.Reset(nil) // returns its stack to the pool
	if !t.Next() || t.Delim != '{' {
		return false
	}
	var seen uint64
	for t.Next() {
		if t.Depth != 1 || !t.IsKey {
			continue
		}
		i := slices.Index(names, string(t.Value[1:len(t.Value)-1]))
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
	}
	return t.Err == nil
}

// decodeStrict is decodeJSON's decode of any body: the keys checked first, then
// encoding/json with unknown fields refused and nothing after the value.
func decodeStrict(body []byte, v any, names []string) error {
	if err := checkObjectKeys(body, names); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return domain.Errorf(domain.EINVALID, "request body must hold a single JSON object")
	}
	return nil
}

// checkObjectKeys makes the body a JSON object whose keys are, exactly and
// once each, among names. encoding/json alone would accept null, match
// "RESOLUTION" to "resolution" and let the last of two duplicates win: two
// parsers of one request must never read it differently.
func checkObjectKeys(body []byte, names []string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return domain.Errorf(domain.EINVALID, "request body must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		if !slices.Contains(names, key) {
			return &domain.Error{Code: domain.EINVALID, Message: fmt.Sprintf("unknown field %q", key),
				Details: map[string]any{"field": key}}
		}
		if seen[key] {
			return &domain.Error{Code: domain.EINVALID, Message: fmt.Sprintf("field %q appears twice", key),
				Details: map[string]any{"field": key}}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

// fieldNames caches jsonNames by type: request types are few and fixed.
var fieldNames sync.Map // reflect.Type → []string

// jsonNames returns the json names of the fields of the struct v points to, at
// most 64 (plainObject keeps a bit per name).
func jsonNames(v any) []string {
	t := reflect.TypeOf(v).Elem()
	if names, ok := fieldNames.Load(t); ok {
		return names.([]string)
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	if len(names) > 64 {
		panic(fmt.Sprintf("request type %v has more than 64 fields", t))
	}
	fieldNames.Store(t, names)
	return names
}

func jsonError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return &statusError{status: http.StatusRequestEntityTooLarge,
			err: domain.Errorf(domain.EINVALID, "request body is larger than %d bytes", MaxBodyBytes)}
	case errors.As(err, &syntaxErr):
		return domain.Errorf(domain.EINVALID, "malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.As(err, &typeErr):
		return &domain.Error{Code: domain.EINVALID,
			Message: fmt.Sprintf("field %q must be %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())),
			Details: map[string]any{"field": typeErr.Field}}
	case errors.Is(err, io.EOF):
		return domain.Errorf(domain.EINVALID, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.EINVALID, "malformed JSON: unexpected end of body")
	}
	// encoding/json reports an unknown field only as text: json: unknown field "x".
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field = strings.Trim(field, `"`)
		return &domain.Error{Code: domain.EINVALID, Message: fmt.Sprintf("unknown field %q", field),
			Details: map[string]any{"field": field}}
	}
	return domain.Errorf(domain.EINVALID, "invalid request body: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return "of another type"
}

// required returns an INVALID_INPUT error naming field when v is nil.
func required[T any](field string, v *T) error {
	if v == nil {
		return &domain.Error{Code: domain.EINVALID, Message: field + " is required", Details: map[string]any{"field": field}}
	}
	return nil
}

// pathID parses the UUID path variable name, or returns INVALID_ID.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	raw := mux.Vars(r)[name]
	id, err := parseUUID(raw)
	if err != nil {
		return uuid.Nil, &domain.Error{Code: domain.EINVALIDID, Message: name + " must be a UUID",
			Details: map[string]any{"parameter": name}}
	}
	return id, nil
}

// parseUUID accepts only the canonical 36-character form, so that one anomaly
// has one spelling in URLs and logs.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, errors.New("not a canonical UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, errors.New("not a UUID")
	}
	return id, nil
}
