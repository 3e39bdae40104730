package http

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"

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

// responseBuffers hold the bodies writeJSON encodes: a writer copies what it
// is given before Write returns, so a buffer serves the next response.
var responseBuffers = sync.Pool{New: func() any { return new([]byte) }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := responseBuffers.Get().(*[]byte)
	// The flags of json.Marshal, which encodes as encoding/json does.
	b, err := json.Append((*buf)[:0], v, json.EscapeHTML|json.SortMapKeys)
	if err != nil {
		status = http.StatusInternalServerError
		b = append(b[:0], `{"code":"INTERNAL_ERROR","message":"internal error","details":{},"trace_id":""}`...)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	if cap(b) <= 64<<10 { // an unusually large body is not kept
		*buf = b
		responseBuffers.Put(buf)
	}
}
