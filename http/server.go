// Package http serves the anomalyd API over HTTP with gorilla/mux: routes,
// authentication, the JSON contract and the mapping of error codes to statuses.
package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
)

// Commands executes the commands of the API.
type Commands interface {
	Report(ctx context.Context, p domain.Principal, cmd domain.ReportAnomaly) (app.Result, error)
	Investigate(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.InvestigateAnomaly) (app.Result, error)
	Resolve(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.ResolveAnomaly) (app.Result, error)
	Dismiss(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.DismissAnomaly) (app.Result, error)
	Restore(ctx context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RestoreAgent) (app.AgentResult, error)
	Revoke(ctx context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RevokeAgent) (app.AgentResult, error)
	AnomalyEvents(ctx context.Context, p domain.Principal, id uuid.UUID) ([]domain.Event, error)
	AnomalyAt(ctx context.Context, p domain.Principal, id uuid.UUID, at time.Time) (domain.AnomalyState, error)
	AgentAt(ctx context.Context, p domain.Principal, agent uuid.UUID, anomalies []uuid.UUID, at time.Time) (domain.AgentContainment, error)
}

// AnomalyReader is the anomaly read model.
type AnomalyReader interface {
	Get(tenant string, id uuid.UUID) (projections.AnomalyView, bool)
	List(tenant string, f projections.Filter, before uint64, limit int) ([]projections.AnomalyView, uint64)
	AnomaliesOfAgent(tenant string, agent uuid.UUID) []uuid.UUID
}

// AgentReader is the agent read model.
type AgentReader interface {
	Get(tenant string, agent uuid.UUID) (domain.AgentContainment, bool)
}

// Waiter tells when the read models have applied the event at a store position.
type Waiter interface {
	WaitFor(ctx context.Context, pos uint64) error
}

// TokenVerifier turns a bearer token into a principal; its errors are safe to
// show to the client.
type TokenVerifier interface {
	Verify(token string) (domain.Principal, error)
}

// KeyAuthenticator turns an API key secret into a principal.
type KeyAuthenticator interface {
	Authenticate(secret string) (domain.Principal, error)
}

// Config is what a Server is built from.
type Config struct {
	Addr     string
	Commands Commands
	Reader   AnomalyReader
	Agents   AgentReader
	Waiter   Waiter
	Keys     KeyAuthenticator
	// Tokens verifies bearer JWTs; nil refuses them.
	Tokens TokenVerifier
	// Idempotency keeps Idempotency-Key outcomes; nil turns the header off.
	Idempotency IdempotencyStore
	Logger      *slog.Logger
	// Ready reports the readiness checks by name ("ok" or why not) and whether
	// all pass; nil: always ready.
	Ready func(ctx context.Context) (map[string]string, bool)
	// Metrics serves GET /metrics; nil: no such route.
	Metrics http.Handler
	// ObserveRequest, if set, is told of every routed request.
	ObserveRequest func(method, route string, status int, d time.Duration)
	// RateLimit is each tenant's sustained request rate (per second) and
	// RateBurst its bucket; 0 turns rate limiting off.
	RateLimit float64
	RateBurst int
	// ReadYourWritesTimeout bounds how long a command waits for the read model
	// to show its event before answering from the command's own state.
	ReadYourWritesTimeout time.Duration
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	ln      net.Listener
	srv     *http.Server
	router  *mux.Router
	limiter *tenantLimiter
}

// NewServer returns a server for cfg; Open starts it.
func NewServer(cfg Config) *Server {
	if cfg.ReadYourWritesTimeout == 0 {
		cfg.ReadYourWritesTimeout = 5 * time.Second
	}
	// SkipClean: a path with ".." or "//" is answered by the routes like any
	// other (authenticated, traced, INVALID_ID) instead of being redirected.
	s := &Server{cfg: cfg, logger: cfg.Logger, router: mux.NewRouter().SkipClean(true),
		limiter: newTenantLimiter(cfg.RateLimit, cfg.RateBurst)}
	s.router.Use(s.withTrace, s.withRecover, s.withAccessLog)
	s.router.NotFoundHandler = s.withTrace(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, domain.Errorf(domain.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	}))
	s.router.MethodNotAllowedHandler = s.withTrace(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, &statusError{status: http.StatusMethodNotAllowed,
			err: domain.Errorf(domain.EINVALID, "method %s is not allowed on %s", r.Method, r.URL.Path)})
	}))
	// The /v1 routes hang on the root router, each wrapped in the /v1 chain:
	// a gorilla/mux subrouter answers 404 instead of 405 for a known path with
	// another method (gorilla/mux#739). The router tries the routes in the
	// order they were added, a regexp each (about 0.7 µs apiece), so the routes
	// that take the traffic come first: the commands, then the reads, then the
	// probes. No two routes match the same request, and a 405 does not depend
	// on the order, so the order changes nothing else.
	v1 := v1Routes{router: s.router, chain: func(scope string, h http.Handler) http.Handler {
		return s.withPrincipal(s.withScope(scope, s.withRateLimit(s.withIdempotency(h))))
	}}
	s.registerAnomalyRoutes(v1)
	s.registerAgentRoutes(v1)
	s.router.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet)
	s.router.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet)
	s.router.Handle("/openapi.json", OpenAPIHandler()).Methods(http.MethodGet)
	if cfg.Metrics != nil {
		s.router.Handle("/metrics", cfg.Metrics).Methods(http.MethodGet)
	}
	s.srv = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes, for serving without a listener.
func (s *Server) Handler() http.Handler { return s.router }

// Open listens on the configured address, then serves in the background, so a
// bad address fails here and not later.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the server listens on (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops accepting requests and waits for those in flight until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// v1Routes registers routes under /v1, each behind authentication, its scope,
// the rate limit and idempotency, in that order: a request is judged on its
// credential before anything reads its body.
type v1Routes struct {
	router *mux.Router
	chain  func(scope string, h http.Handler) http.Handler
}

func (v v1Routes) handle(method, path, scope string, f http.HandlerFunc) {
	v.router.Handle("/v1"+path, v.chain(scope, f)).Methods(method)
}
