// Package domain holds the anomaly aggregate, its commands and events, the rules
// of agent containment, and the error codes every other package speaks in. It
// imports only the standard library and github.com/google/uuid.
package domain

import (
	"errors"
	"fmt"
)

// Error codes. They are the codes of the API's error body; http maps each to a status.
const (
	EINVALID      = "INVALID_INPUT"
	EINVALIDID    = "INVALID_ID"
	EUNAUTHORIZED = "UNAUTHORIZED"
	EFORBIDDEN    = "FORBIDDEN"
	ENOTFOUND     = "NOT_FOUND"
	ECONFLICT     = "CONFLICT"
	EIDEMPOTENCY  = "IDEMPOTENCY_MISMATCH"
	ELIMIT        = "LIMIT_EXCEEDED"
	EINTERNAL     = "INTERNAL_ERROR"
)

// Error is the one error type of the product: a code, a message safe to show to a
// client, and optional structured details.
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: the code of an *Error in its chain, CONFLICT
// for a concurrency error, and INTERNAL_ERROR for anything else (nil gives "").
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, ErrConcurrency) {
		return ECONFLICT
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err; internal errors get a
// generic message so that no detail of the machinery reaches a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if errors.Is(err, ErrConcurrency) {
		return "the resource was changed concurrently; retry"
	}
	return "internal error"
}

// ErrConcurrency is the sentinel every *ConcurrencyError matches with errors.Is.
var ErrConcurrency = errors.New("concurrency conflict")

// ConcurrencyError reports that a stream was not at the version an append expected.
// Store adapters translate their own wrong-version errors into it.
type ConcurrencyError struct {
	Stream   StreamID
	Expected uint64
	Actual   uint64 // the stream's version when known, else 0
}

// Error implements the error interface.
func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("concurrency conflict on %s: expected version %d, stream is at %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConcurrency) true for every *ConcurrencyError.
func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }
