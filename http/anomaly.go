package http

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

func (s *Server) registerAnomalyRoutes(r v1Routes) {
	// The commands first, the bursts' two first of all (see NewServer).
	r.handle(http.MethodPost, "/anomalies", domain.ScopeAnomaliesWrite, s.handleAnomalyReport)
	r.handle(http.MethodPost, "/anomalies/{anomalyId}/resolve", domain.ScopeAnomaliesResolve, s.handleAnomalyResolve)
	r.handle(http.MethodPost, "/anomalies/{anomalyId}/investigate", domain.ScopeAnomaliesWrite, s.handleAnomalyInvestigate)
	r.handle(http.MethodPost, "/anomalies/{anomalyId}/dismiss", domain.ScopeAnomaliesResolve, s.handleAnomalyDismiss)
	r.handle(http.MethodGet, "/anomalies", domain.ScopeAnomaliesRead, s.handleAnomalyList)
	r.handle(http.MethodGet, "/anomalies/{anomalyId}", domain.ScopeAnomaliesRead, s.handleAnomalyGet)
	r.handle(http.MethodGet, "/anomalies/{anomalyId}/events", domain.ScopeAnomaliesRead, s.handleAnomalyEvents)
}

// anomalyJSON is the one representation of an anomaly that every endpoint
// returns. Fields without a value are null, arrays empty, never absent.
type anomalyJSON struct {
	AnomalyID           uuid.UUID       `json:"anomaly_id"`
	ID                  uuid.UUID       `json:"id"`
	AgentID             uuid.UUID       `json:"agent_id"`
	AnomalyType         string          `json:"anomaly_type"`
	Severity            string          `json:"severity"`
	Description         *string         `json:"description"`
	Details             json.RawMessage `json:"details"`
	Status              string          `json:"status"`
	AutoResponse        string          `json:"auto_response"`
	Assignee            *string         `json:"assignee"`
	Resolution          *string         `json:"resolution"`
	Notes               *string         `json:"notes"`
	ResolvedBy          *string         `json:"resolved_by"`
	DismissReason       *string         `json:"dismiss_reason"`
	ReferencesAnomalyID *uuid.UUID      `json:"references_anomaly_id"`
	ReferencedBy        []uuid.UUID     `json:"referenced_by"`
	CreatedAt           time.Time       `json:"created_at"`
	UpdatedAt           time.Time       `json:"updated_at"`
	ResolvedAt          *time.Time      `json:"resolved_at"`
}

func toAnomalyJSON(v projections.AnomalyView) anomalyJSON {
	a := v.AnomalyState
	out := anomalyJSON{
		AnomalyID: a.ID, ID: a.ID, AgentID: a.AgentID, AnomalyType: a.AnomalyType,
		Severity: string(a.Severity), Description: a.Description, Details: a.Details,
		Status: string(a.Status), AutoResponse: a.AutoResponse.String(), Assignee: a.Assignee, Notes: a.Notes,
		ResolvedBy: a.ResolvedBy, DismissReason: a.DismissReason, ReferencesAnomalyID: a.ReferencesAnomalyID,
		ReferencedBy: v.ReferencedBy, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}
	if out.ReferencedBy == nil {
		out.ReferencedBy = []uuid.UUID{}
	}
	if len(out.Details) == 0 {
		out.Details = json.RawMessage("{}")
	}
	if a.Resolution != "" {
		r := string(a.Resolution)
		out.Resolution = &r
	}
	if a.ResolvedAt != nil {
		t := a.ResolvedAt.UTC()
		out.ResolvedAt = &t
	}
	return out
}

// reportRequest is the body of POST /v1/anomalies.
type reportRequest struct {
	AgentID             *string         `json:"agent_id"`
	AnomalyType         *string         `json:"anomaly_type"`
	Severity            *string         `json:"severity"`
	Description         *string         `json:"description"`
	Details             json.RawMessage `json:"details"`
	ReferencesAnomalyID *string         `json:"references_anomaly_id"`
}

func (req reportRequest) command() (domain.ReportAnomaly, error) {
	for _, err := range []error{
		required("agent_id", req.AgentID), required("anomaly_type", req.AnomalyType), required("severity", req.Severity),
	} {
		if err != nil {
			return domain.ReportAnomaly{}, err
		}
	}
	agent, err := parseUUID(*req.AgentID)
	if err != nil {
		return domain.ReportAnomaly{}, &domain.Error{Code: domain.EINVALID, Message: "agent_id must be a UUID",
			Details: map[string]any{"field": "agent_id"}}
	}
	sev, err := domain.ParseSeverity(*req.Severity)
	if err != nil {
		return domain.ReportAnomaly{}, err
	}
	cmd := domain.ReportAnomaly{AgentID: agent, AnomalyType: *req.AnomalyType, Severity: sev,
		Description: req.Description, Details: req.Details}
	if req.ReferencesAnomalyID != nil {
		ref, err := parseUUID(*req.ReferencesAnomalyID)
		if err != nil {
			return domain.ReportAnomaly{}, &domain.Error{Code: domain.EINVALID,
				Message: "references_anomaly_id must be a UUID", Details: map[string]any{"field": "references_anomaly_id"}}
		}
		cmd.ReferencesAnomalyID = &ref
	}
	return cmd, nil
}

// handleAnomalyReport handles POST /v1/anomalies: it opens an anomaly and
// answers 201 with a Location header and the anomaly.
func (s *Server) handleAnomalyReport(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req reportRequest
	if err := decodeJSON(r, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	cmd, err := req.command()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	res, err := s.cfg.Commands.Report(r.Context(), p, cmd)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/anomalies/"+res.Anomaly.ID.String())
	writeJSON(w, http.StatusCreated, toAnomalyJSON(s.afterCommand(r.Context(), p.Tenant, res)))
}

// handleAnomalyGet handles GET /v1/anomalies/{anomalyId}.
func (s *Server) handleAnomalyGet(w http.ResponseWriter, r *http.Request) {
	p, id, ok := s.input(w, r, "anomalyId", nil, false)
	if !ok {
		return
	}
	at, err := asOf(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	a, found := s.cfg.Reader.Get(p.Tenant, id)
	if at != nil {
		// The state at that time comes from the log alone; only the list of
		// later anomalies that reference it comes from the read model.
		st, err := s.cfg.Commands.AnomalyAt(r.Context(), p, id, *at)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		a = projections.AnomalyView{AnomalyState: st, ReferencedBy: s.referencedBy(p.Tenant, a.ReferencedBy, *at)}
		found = true
	}
	if !found {
		s.Error(w, r, domain.Errorf(domain.ENOTFOUND, "anomaly %s not found", id))
		return
	}
	writeJSON(w, http.StatusOK, toAnomalyJSON(a))
}

// referencedBy keeps the referencing anomalies that existed at time at.
func (s *Server) referencedBy(tenant string, ids []uuid.UUID, at time.Time) []uuid.UUID {
	var out []uuid.UUID
	for _, id := range ids {
		if v, ok := s.cfg.Reader.Get(tenant, id); ok && !v.CreatedAt.After(at) {
			out = append(out, id)
		}
	}
	return out
}

// asOf reads the only query parameter an anomaly or agent GET takes: as_of, an
// RFC 3339 time. Any other parameter is INVALID_INPUT.
func asOf(r *http.Request) (*time.Time, error) {
	q := r.URL.Query()
	for name, vals := range q {
		if name != "as_of" || len(vals) != 1 {
			return nil, invalidParam(name, "the only query parameter here is as_of, once")
		}
	}
	v := q.Get("as_of")
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, invalidParam("as_of", "as_of must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
	}
	return &t, nil
}

// resolveRequest is the body of POST /v1/anomalies/{anomalyId}/resolve.
type resolveRequest struct {
	Resolution *string `json:"resolution"`
	Notes      *string `json:"notes"`
	ResolvedBy *string `json:"resolved_by"`
}

// handleAnomalyResolve handles POST /v1/anomalies/{anomalyId}/resolve: it closes
// the anomaly with a resolution and answers 200 with the anomaly.
func (s *Server) handleAnomalyResolve(w http.ResponseWriter, r *http.Request) {
	var req resolveRequest
	s.anomalyCommand(w, r, &req, false, func(p domain.Principal, id uuid.UUID) (app.Result, error) {
		if err := required("resolution", req.Resolution); err != nil {
			return app.Result{}, err
		}
		// A bad enum is the request's fault whatever the anomaly: 400 before 404.
		if _, err := domain.ParseResolution(*req.Resolution); err != nil {
			return app.Result{}, err
		}
		return s.cfg.Commands.Resolve(r.Context(), p, id, domain.ResolveAnomaly{
			Resolution: domain.Resolution(*req.Resolution), Notes: req.Notes, ResolvedBy: req.ResolvedBy,
		})
	})
}

// investigateRequest is the body of POST /v1/anomalies/{anomalyId}/investigate.
type investigateRequest struct {
	Assignee *string `json:"assignee"`
	Notes    *string `json:"notes"`
}

// handleAnomalyInvestigate handles POST /v1/anomalies/{anomalyId}/investigate:
// it moves an open anomaly to investigating. The body is optional.
func (s *Server) handleAnomalyInvestigate(w http.ResponseWriter, r *http.Request) {
	var req investigateRequest
	s.anomalyCommand(w, r, &req, true, func(p domain.Principal, id uuid.UUID) (app.Result, error) {
		return s.cfg.Commands.Investigate(r.Context(), p, id, domain.InvestigateAnomaly{Assignee: req.Assignee, Notes: req.Notes})
	})
}

// dismissRequest is the body of POST /v1/anomalies/{anomalyId}/dismiss.
type dismissRequest struct {
	Reason *string `json:"reason"`
}

// handleAnomalyDismiss handles POST /v1/anomalies/{anomalyId}/dismiss: it closes
// the anomaly without a determination.
func (s *Server) handleAnomalyDismiss(w http.ResponseWriter, r *http.Request) {
	var req dismissRequest
	s.anomalyCommand(w, r, &req, false, func(p domain.Principal, id uuid.UUID) (app.Result, error) {
		if err := required("reason", req.Reason); err != nil {
			return app.Result{}, err
		}
		return s.cfg.Commands.Dismiss(r.Context(), p, id, domain.DismissAnomaly{Reason: *req.Reason})
	})
}

// anomalyCommand runs a command on one anomaly (see command) and answers 200
// with the anomaly as the read model shows it afterwards.
func (s *Server) anomalyCommand(w http.ResponseWriter, r *http.Request, req any, optionalBody bool,
	run func(domain.Principal, uuid.UUID) (app.Result, error)) {
	command(s, w, r, "anomalyId", req, optionalBody, run, func(p domain.Principal, _ uuid.UUID, res app.Result) any {
		return toAnomalyJSON(s.afterCommand(r.Context(), p.Tenant, res))
	})
}

// command runs the checks every command on one resource shares — the path id
// named param, the body — then run, and answers 200 with what respond makes of
// its result, or the error. The route checked the scope.
func command[R any](s *Server, w http.ResponseWriter, r *http.Request, param string, req any, optionalBody bool,
	run func(domain.Principal, uuid.UUID) (R, error), respond func(domain.Principal, uuid.UUID, R) any) {
	p, id, ok := s.input(w, r, param, req, optionalBody)
	if !ok {
		return
	}
	res, err := run(p, id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, respond(p, id, res))
}

// input checks, in the documented order, what a request on one resource
// needs after its scope: the path id, then the body (none when req is nil; it
// may be empty when optionalBody). On a failure it writes the error and
// returns false.
func (s *Server) input(w http.ResponseWriter, r *http.Request, param string, req any, optionalBody bool) (domain.Principal, uuid.UUID, bool) {
	p := principal(r)
	id, err := pathID(r, param)
	if err != nil {
		s.Error(w, r, err)
		return p, uuid.Nil, false
	}
	if req != nil && !(optionalBody && r.ContentLength == 0) {
		if err := decodeJSON(r, req); err != nil {
			s.Error(w, r, err)
			return p, uuid.Nil, false
		}
	}
	return p, id, true
}

// afterCommand waits until the read model shows the command's event, so that
// the client's next read sees it, and returns the anomaly as the read model has
// it. If the read model does not catch up in time the command still succeeded:
// it answers from the command's own state and logs the lag.
func (s *Server) afterCommand(ctx context.Context, tenant string, res app.Result) projections.AnomalyView {
	if s.waitFor(ctx, res.Position) {
		if a, ok := s.cfg.Reader.Get(tenant, res.Anomaly.ID); ok {
			return a
		}
	}
	return projections.AnomalyView{AnomalyState: res.Anomaly}
}

// waitFor waits, for a bounded time, until the read models have applied the
// event at pos, and reports whether they have.
func (s *Server) waitFor(ctx context.Context, pos uint64) bool {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ReadYourWritesTimeout)
	defer cancel()
	if err := s.cfg.Waiter.WaitFor(wctx, pos); err != nil {
		s.logger.Warn("read model behind a command", "position", pos, "trace_id", traceID(ctx), "err", err)
		return false
	}
	return true
}

// AnomalyRepresentation returns the anomaly as every endpoint of the API shows
// it, for tools that must print exactly what the API would.
func AnomalyRepresentation(v projections.AnomalyView) any { return toAnomalyJSON(v) }
