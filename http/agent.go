package http

import (
	"net/http"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

func (s *Server) registerAgentRoutes(r v1Routes) {
	r.handle(http.MethodGet, "/agents/{agentId}", domain.ScopeAgentsRead, s.handleAgentGet)
	r.handle(http.MethodPost, "/agents/{agentId}/restore", domain.ScopeAgentsWrite, s.handleAgentRestore)
	r.handle(http.MethodPost, "/agents/{agentId}/revoke", domain.ScopeAgentsWrite, s.handleAgentRevoke)
}

type holdJSON struct {
	AnomalyID   uuid.UUID `json:"anomaly_id"`
	Containment string    `json:"containment"`
	Reason      string    `json:"reason"`
}

type agentJSON struct {
	AgentID   uuid.UUID  `json:"agent_id"`
	Status    string     `json:"status"`
	Holds     []holdJSON `json:"holds"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func toAgentJSON(id uuid.UUID, c domain.AgentContainment) agentJSON {
	out := agentJSON{AgentID: id, Status: domain.AgentStatus(c.Status()), Holds: []holdJSON{}, UpdatedAt: c.UpdatedAt().UTC()}
	for _, h := range c.Holds() {
		out.Holds = append(out.Holds, holdJSON{AnomalyID: h.AnomalyID, Containment: h.Containment.String(), Reason: h.Reason})
	}
	return out
}

// handleAgentGet handles GET /v1/agents/{agentId}: the agent's effective status
// and the anomalies that hold it.
func (s *Server) handleAgentGet(w http.ResponseWriter, r *http.Request) {
	p, id, ok := s.input(w, r, "agentId", nil, false)
	if !ok {
		return
	}
	at, err := asOf(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if at != nil {
		c, err := s.cfg.Commands.AgentAt(r.Context(), p, id, s.cfg.Reader.AnomaliesOfAgent(p.Tenant, id), *at)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toAgentJSON(id, c))
		return
	}
	c, ok := s.cfg.Agents.Get(p.Tenant, id)
	if !ok {
		s.Error(w, r, domain.Errorf(domain.ENOTFOUND, "agent %s has no anomaly in this tenant", id))
		return
	}
	writeJSON(w, http.StatusOK, toAgentJSON(id, c))
}

type restoreRequest struct {
	Notes *string `json:"notes"`
}

// handleAgentRestore handles POST /v1/agents/{agentId}/restore: it releases the
// agent's mitigated holds. The body is optional.
func (s *Server) handleAgentRestore(w http.ResponseWriter, r *http.Request) {
	var req restoreRequest
	s.agentCommand(w, r, &req, true, func(p domain.Principal, id uuid.UUID) (app.AgentResult, error) {
		return s.cfg.Commands.Restore(r.Context(), p, id, domain.RestoreAgent{Notes: req.Notes})
	})
}

type revokeRequest struct {
	Reason *string `json:"reason"`
}

// handleAgentRevoke handles POST /v1/agents/{agentId}/revoke: it revokes the
// agent for good.
func (s *Server) handleAgentRevoke(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	s.agentCommand(w, r, &req, false, func(p domain.Principal, id uuid.UUID) (app.AgentResult, error) {
		if err := required("reason", req.Reason); err != nil {
			return app.AgentResult{}, err
		}
		return s.cfg.Commands.Revoke(r.Context(), p, id, domain.RevokeAgent{Reason: *req.Reason})
	})
}

// agentCommand runs a command on one agent (see command) and answers 200 with
// the agent as the read model shows it afterwards.
func (s *Server) agentCommand(w http.ResponseWriter, r *http.Request, req any, optionalBody bool,
	run func(domain.Principal, uuid.UUID) (app.AgentResult, error)) {
	command(s, w, r, "agentId", req, optionalBody, run, func(p domain.Principal, id uuid.UUID, res app.AgentResult) any {
		s.waitFor(r.Context(), res.Position)
		c, _ := s.cfg.Agents.Get(p.Tenant, id)
		return toAgentJSON(id, c)
	})
}

// AgentRepresentation returns the agent as GET /v1/agents/{agentId} shows it.
func AgentRepresentation(id uuid.UUID, c domain.AgentContainment) any { return toAgentJSON(id, c) }
