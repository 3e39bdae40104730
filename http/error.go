package http

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/segmentio/encoding/json"

	"github.com/anomalyd/anomalyd/domain"
)

// codes maps each error code to its HTTP status; the one table of its kind.
var codes = map[string]int{
	domain.EINVALID:      http.StatusBadRequest,
	domain.EINVALIDID:    http.StatusBadRequest,
	domain.EUNAUTHORIZED: http.StatusUnauthorized,
	domain.EFORBIDDEN:    http.StatusForbidden,
	domain.ENOTFOUND:     http.StatusNotFound,
	domain.ECONFLICT:     http.StatusConflict,
	domain.EIDEMPOTENCY:  http.StatusUnprocessableEntity,
	domain.ELIMIT:        http.StatusTooManyRequests,
	domain.EINTERNAL:     http.StatusInternalServerError,
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
	TraceID string         `json:"trace_id"`
}

// statusError lets a handler answer a status that no domain code names (413,
// 415, 405) in the same body format.
type statusError struct {
	status int
	err    *domain.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// Error writes err as the documented JSON error body. Internal errors are
// logged with the request's trace id and never described to the client.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	status, ok := codes[code]
	if !ok {
		code, status = domain.EINTERNAL, http.StatusInternalServerError
	}
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	body := errorBody{Code: code, Message: domain.ErrorMessage(err), Details: map[string]any{}, TraceID: traceID(r.Context())}
	var de *domain.Error
	if errors.As(err, &de) && de.Details != nil && code != domain.EINTERNAL {
		body.Details = de.Details
	}
	if code == domain.EINTERNAL {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("trace_id", body.TraceID), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="anomalyd"`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL_ERROR","message":"internal error","details":{},"trace_id":""}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
