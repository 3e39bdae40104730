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
	"strings"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
)

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 64 << 10

// decodeJSON decodes the request body strictly into v: JSON content type, at most
// MaxBodyBytes, no unknown fields, exactly one value. Its errors are 415, 413 or
// INVALID_INPUT.
func decodeJSON(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &statusError{status: http.StatusUnsupportedMediaType,
			err: domain.Errorf(domain.EINVALID, "Content-Type must be application/json")}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	if err := checkObjectKeys(body, v); err != nil {
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
// once each, json names of v's fields. encoding/json alone would accept null,
// match "RESOLUTION" to "resolution" and let the last of two duplicates win:
// two parsers of one request must never read it differently.
func checkObjectKeys(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return domain.Errorf(domain.EINVALID, "request body must be a JSON object")
	}
	known := jsonNames(v)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		if !known[key] {
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

// jsonNames returns the json names of the fields of the struct v points to.
func jsonNames(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	out := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
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
