package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
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
