package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

// IdempotencyStore keeps the outcome of requests sent with an Idempotency-Key.
type IdempotencyStore interface {
	// Claim reserves key for a request with fingerprint fp. It returns the
	// response stored by an earlier request, or nil when this request now holds
	// the key; IDEMPOTENCY_MISMATCH when the key was used with another request,
	// CONFLICT while another request with it runs.
	Claim(ctx context.Context, key, fp string) ([]byte, error)
	// Complete stores the response of the request that holds key.
	Complete(ctx context.Context, key, fp string, response []byte) error
	// Release gives key up without an outcome.
	Release(ctx context.Context, key string) error
}

// idempotencyNamespace derives a command id from an idempotency key, so that a
// command repeated after a crash records the same event id and recognises it.
var idempotencyNamespace = uuid.MustParse("2f0d8a8e-5c0e-4b7e-9a49-3c1f6f1b7d22")

// storedResponse is what a repeat of the request gets back, byte for byte.
type storedResponse struct {
	Status   int    `json:"status"`
	Location string `json:"location,omitempty"`
	Body     []byte `json:"body"`
}

// withIdempotency makes a POST with an Idempotency-Key happen once: a repeat with
// the same key and the same request gets the first response; the same key with
// another request gets 422. Keys are scoped to the tenant and the principal.
// Responses of 5xx are not kept, so that a retry runs the command again.
func (s *Server) withIdempotency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if r.Method != http.MethodPost || key == "" || s.cfg.Idempotency == nil {
			next.ServeHTTP(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			s.Error(w, r, &domain.Error{Code: domain.EINVALID,
				Message: "Idempotency-Key must be 1 to 255 printable ASCII characters",
				Details: map[string]any{"header": "Idempotency-Key"}})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			s.Error(w, r, jsonError(err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p := principal(r)
		scoped := sha256.Sum256([]byte(p.Tenant + "\x00" + p.Actor.Kind + "\x00" + p.Actor.ID + "\x00" + key))
		kvKey := hex.EncodeToString(scoped[:])
		fp := sha256.Sum256(append([]byte(r.Method+"\x00"+r.URL.Path+"\x00"), body...))
		fingerprint := hex.EncodeToString(fp[:])

		stored, err := s.cfg.Idempotency.Claim(r.Context(), kvKey, fingerprint)
		if err != nil {
			if domain.ErrorCode(err) == domain.ECONFLICT {
				w.Header().Set("Retry-After", "1")
			}
			s.Error(w, r, err)
			return
		}
		if stored != nil {
			var resp storedResponse
			if err := json.Unmarshal(stored, &resp); err != nil {
				s.Error(w, r, err)
				return
			}
			if resp.Location != "" {
				w.Header().Set("Location", resp.Location)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(resp.Status)
			w.Write(resp.Body)
			return
		}

		rec := &capture{ResponseWriter: w}
		ctx := app.WithCommandID(r.Context(), uuid.NewSHA1(idempotencyNamespace, scoped[:]))
		next.ServeHTTP(rec, r.WithContext(ctx))

		// The outcome is recorded even if the client went away meanwhile.
		octx := context.WithoutCancel(r.Context())
		if rec.status >= 500 {
			if err := s.cfg.Idempotency.Release(octx, kvKey); err != nil {
				s.logger.Error("idempotency key not released", "trace_id", traceID(ctx), "err", err)
			}
			return
		}
		b, _ := json.Marshal(storedResponse{Status: rec.status, Location: rec.Header().Get("Location"), Body: rec.body.Bytes()})
		if err := s.cfg.Idempotency.Complete(octx, kvKey, fingerprint, b); err != nil {
			s.logger.Error("idempotency outcome not stored", "trace_id", traceID(ctx), "err", err)
		}
	})
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// capture passes a response through and keeps a copy of its status and body.
type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}
