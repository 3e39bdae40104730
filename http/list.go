package http

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// List page sizes.
const (
	defaultLimit = 50
	maxLimit     = 200
)

type listJSON struct {
	Items      []anomalyJSON `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

// handleAnomalyList handles GET /v1/anomalies: the tenant's anomalies, newest
// first, filtered by status, severity, agent_id, anomaly_type, created_after and
// created_before, in pages of limit (1–200, default 50) with an opaque cursor.
func (s *Server) handleAnomalyList(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	items, next := s.cfg.Reader.List(p.Tenant, q.filter, q.before, q.limit)
	out := listJSON{Items: make([]anomalyJSON, len(items))}
	for i, v := range items {
		out.Items[i] = toAnomalyJSON(v)
	}
	if next != 0 {
		c := encodeCursor(next)
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

type listQuery struct {
	filter projections.Filter
	before uint64
	limit  int
}

func invalidParam(name, msg string) error {
	return &domain.Error{Code: domain.EINVALID, Message: msg, Details: map[string]any{"parameter": name}}
}

// parseListQuery reads the list parameters; an unknown, repeated or malformed
// parameter is INVALID_INPUT naming it, so a typo never silently widens a query.
func parseListQuery(v url.Values) (listQuery, error) {
	q := listQuery{limit: defaultLimit}
	for name, vals := range v {
		if len(vals) != 1 {
			return q, invalidParam(name, name+" may be given once")
		}
		val := vals[0]
		var err error
		switch name {
		case "status":
			switch st := domain.Status(val); st {
			case domain.StatusOpen, domain.StatusInvestigating, domain.StatusResolved, domain.StatusDismissed:
				q.filter.Status = st
			default:
				err = invalidParam(name, "status must be one of open, investigating, resolved, dismissed")
			}
		case "severity":
			if q.filter.Severity, err = domain.ParseSeverity(val); err != nil {
				err = invalidParam(name, "severity must be one of low, medium, high, critical")
			}
		case "agent_id":
			if q.filter.AgentID, err = parseUUID(val); err != nil {
				err = invalidParam(name, "agent_id must be a UUID")
			}
		case "anomaly_type":
			if !domain.ValidAnomalyType(val) {
				err = invalidParam(name, "anomaly_type must match [a-z0-9_.-]{1,64}")
			}
			q.filter.AnomalyType = val
		case "created_after", "created_before":
			t, perr := time.Parse(time.RFC3339Nano, val)
			if perr != nil {
				err = invalidParam(name, name+" must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
			} else if name == "created_after" {
				q.filter.CreatedAfter = t
			} else {
				q.filter.CreatedBefore = t
			}
		case "limit":
			n, perr := strconv.Atoi(val)
			if perr != nil || n < 1 || n > maxLimit {
				err = invalidParam(name, "limit must be a whole number from 1 to 200")
			}
			q.limit = n
		case "cursor":
			if q.before, err = decodeCursor(val); err != nil {
				err = invalidParam(name, "cursor is not one this server issued")
			}
		default:
			err = invalidParam(name, "unknown query parameter "+strconv.Quote(name))
		}
		if err != nil {
			return q, err
		}
	}
	return q, nil
}

// Cursors are opaque to clients: the store position of the last anomaly of the
// previous page, so that pages stay stable while new anomalies arrive.
func encodeCursor(pos uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p" + strconv.FormatUint(pos, 10)))
}

func decodeCursor(s string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 'p' {
		return 0, domain.Errorf(domain.EINVALID, "bad cursor")
	}
	pos, err := strconv.ParseUint(string(b[1:]), 10, 64)
	if err != nil || pos == 0 {
		return 0, domain.Errorf(domain.EINVALID, "bad cursor")
	}
	return pos, nil
}

// eventJSON is one entry of an anomaly's audit trail.
type eventJSON struct {
	EventID    uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Version    uint64          `json:"version"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      actorJSON       `json:"actor"`
	Data       json.RawMessage `json:"data"`
}

type actorJSON struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	ResolvedBy *string `json:"resolved_by,omitempty"`
}

// handleAnomalyEvents handles GET /v1/anomalies/{anomalyId}/events: the audit
// trail, every event of the anomaly read from the log, oldest first.
func (s *Server) handleAnomalyEvents(w http.ResponseWriter, r *http.Request) {
	p, id, ok := s.input(w, r, "anomalyId", nil, false)
	if !ok {
		return
	}
	evs, err := s.cfg.Commands.AnomalyEvents(r.Context(), p, id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := struct {
		Items []eventJSON `json:"items"`
	}{Items: make([]eventJSON, len(evs))}
	for i, e := range evs {
		item := eventJSON{EventID: e.ID, Type: e.Type, Version: e.Version, OccurredAt: e.OccurredAt.UTC(),
			Actor: actorJSON{ID: e.Actor.ID, Kind: e.Actor.Kind}, Data: e.Data}
		if e.Type == domain.EventAnomalyResolved {
			var d domain.AnomalyResolved
			if err := json.Unmarshal(e.Data, &d); err == nil && d.ResolvedBy != "" {
				item.Actor.ResolvedBy = &d.ResolvedBy
			}
		}
		out.Items[i] = item
	}
	writeJSON(w, http.StatusOK, out)
}
