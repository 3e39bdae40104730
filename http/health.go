package http

import (
	"context"
	"net/http"
	"time"
)

type healthJSON struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleHealthz handles GET /healthz: the process is alive and serving. It needs
// no credential and says nothing about tenants.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthJSON{Status: "ok", Checks: map[string]string{}})
}

// handleReadyz handles GET /readyz: 200 when the store and NATS answer and the
// projections are caught up within the configured lag, else 503 with the
// failing checks. It needs no credential and says nothing about tenants.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready == nil {
		writeJSON(w, http.StatusOK, healthJSON{Status: "ok", Checks: map[string]string{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks, ok := s.cfg.Ready(ctx)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, healthJSON{Status: "unavailable", Checks: checks})
		return
	}
	writeJSON(w, http.StatusOK, healthJSON{Status: "ok", Checks: checks})
}
