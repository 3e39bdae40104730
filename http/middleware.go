package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/gorilla/mux"
)

type ctxKey int

const (
	traceKey ctxKey = iota
	principalKey
	logInfoKey
)

// logInfo collects what the access log line reports about a request.
type logInfo struct {
	tenant, principal string
}

var traceparent = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)

// withTrace gives every request a trace id: the W3C traceparent's when the
// client sent one, else a new one. It is returned in X-Trace-Id and in errors.
func (s *Server) withTrace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(traceKey) != nil {
			next.ServeHTTP(w, r)
			return
		}
		id := ""
		if m := traceparent.FindStringSubmatch(r.Header.Get("traceparent")); m != nil && m[1] != strings.Repeat("0", 32) {
			id = m[1]
		} else {
			var b [16]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Trace-Id", id)
		ctx := context.WithValue(r.Context(), traceKey, id)
		ctx = context.WithValue(ctx, logInfoKey, &logInfo{})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func traceID(ctx context.Context) string {
	id, _ := ctx.Value(traceKey).(string)
	return id
}

func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Error(w, r, domain.Errorf(domain.EINTERNAL, "panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// withAccessLog writes one line per request: route, status, duration, tenant
// and principal id. Credentials never reach the log.
func (s *Server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := r.URL.Path
		if cr := mux.CurrentRoute(r); cr != nil {
			if tpl, err := cr.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		info, _ := r.Context().Value(logInfoKey).(*logInfo)
		if info == nil {
			info = &logInfo{}
		}
		if s.cfg.ObserveRequest != nil {
			s.cfg.ObserveRequest(r.Method, route, rec.status, time.Since(start))
		}
		level := slog.LevelInfo
		switch {
		case route == "/metrics" || route == "/healthz" || route == "/readyz":
			level = slog.LevelDebug // probes every few seconds would drown the log
		case rec.status >= 500:
			level = slog.LevelError
		}
		// The record goes to the handler directly: Logger.LogAttrs would also
		// take the caller's stack for a source the handler never writes, a
		// quarter of the cost of the line.
		if h := s.logger.Handler(); h.Enabled(r.Context(), level) {
			line := slog.NewRecord(time.Now(), level, "request", 0)
			line.AddAttrs(slog.String("method", r.Method), slog.String("route", route), slog.Int("status", rec.status),
				slog.Duration("duration", time.Since(start)), slog.String("tenant", info.tenant),
				slog.String("principal", info.principal), slog.String("trace_id", traceID(r.Context())))
			_ = h.Handle(r.Context(), line)
		}
	})
}

// withPrincipal authenticates the caller and checks the tenant header: 401
// without a valid credential, 400 for a missing or malformed X-Tenant-ID, 403
// when the credential belongs to another tenant.
func (s *Server) withPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		if info, _ := r.Context().Value(logInfoKey).(*logInfo); info != nil {
			info.principal = p.Actor.ID
		}
		tenant := r.Header.Get("X-Tenant-ID")
		if !domain.ValidTenant(tenant) {
			s.Error(w, r, &domain.Error{Code: domain.EINVALID,
				Message: "X-Tenant-ID header is required and must match [A-Za-z0-9_-]{1,64}",
				Details: map[string]any{"header": "X-Tenant-ID"}})
			return
		}
		if tenant != p.Tenant {
			s.Error(w, r, domain.Errorf(domain.EFORBIDDEN, "the credential does not belong to tenant %s", tenant))
			return
		}
		if info, _ := r.Context().Value(logInfoKey).(*logInfo); info != nil {
			info.tenant = tenant
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

func (s *Server) authenticate(r *http.Request) (domain.Principal, error) {
	key := r.Header.Get("X-API-Key")
	authz := r.Header.Get("Authorization")
	switch {
	case key != "" && authz != "":
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "send either X-API-Key or Authorization, not both")
	case key != "":
		p, err := s.cfg.Keys.Authenticate(key)
		if err != nil {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "invalid API key")
		}
		return p, nil
	case authz != "":
		token, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || token == "" {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "Authorization must be \"Bearer <token>\"")
		}
		if s.cfg.Tokens == nil {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bearer tokens are not configured on this server; use X-API-Key")
		}
		p, err := s.cfg.Tokens.Verify(token)
		if err != nil {
			// The verifier's messages are written to be shown: they never quote the token.
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "%v", err)
		}
		return p, nil
	}
	return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "a credential is required: X-API-Key or Authorization: Bearer")
}

// principal returns the authenticated principal of a /v1 request.
func principal(r *http.Request) domain.Principal {
	p, _ := r.Context().Value(principalKey).(domain.Principal)
	return p
}

// withScope answers 403 unless the principal holds the route's scope.
func (s *Server) withScope(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).HasScope(scope) {
			s.Error(w, r, &domain.Error{Code: domain.EFORBIDDEN, Message: "the credential lacks scope " + scope,
				Details: map[string]any{"required_scope": scope}})
			return
		}
		next.ServeHTTP(w, r)
	})
}
