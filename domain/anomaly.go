package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unique"

	"github.com/google/uuid"
)

// Input limits of an anomaly's free-text fields.
const (
	MaxDetailsBytes     = 16 << 10
	MaxDescriptionBytes = 4 << 10
	MaxNotesBytes       = 16 << 10
	MaxActorNameBytes   = 256
)

// AnomalyState is the state of one anomaly folded from its events. The command
// side decides on it and the read model serves it, so both see the same fold.
type AnomalyState struct {
	ID                  uuid.UUID
	Tenant              string
	AgentID             uuid.UUID
	AnomalyType         string
	Severity            Severity
	Description         *string
	Details             json.RawMessage // a JSON object; "{}" when none was given
	Status              Status
	AutoResponse        Containment
	Assignee            *string
	Resolution          Resolution // "" until resolved
	Notes               *string
	ResolvedBy          *string
	DismissReason       *string
	ReferencesAnomalyID *uuid.UUID
	CreatedAt           time.Time
	UpdatedAt           time.Time
	ResolvedAt          *time.Time
	Version             uint64
	Hash                string // of the last event: the next event's prev_hash
}

// Apply folds one event of the anomaly's stream into s. It returns an
// INTERNAL_ERROR *Error for an event out of order or of an unknown type, so that
// a corrupt log is never served as if it were whole.
func (s *AnomalyState) Apply(e Event) error {
	if e.Version != s.Version+1 {
		return Errorf(EINTERNAL, "anomaly %s: event version %d after version %d", s.ID, e.Version, s.Version)
	}
	switch e.Type {
	case EventAnomalyReported:
		d, err := payloadOf[AnomalyReported](e)
		if err != nil {
			return err
		}
		*s = AnomalyState{
			ID: d.AnomalyID, Tenant: interned(e.TenantID), AgentID: d.AgentID, AnomalyType: interned(d.AnomalyType),
			Severity: interned(d.Severity), Description: d.Description, Details: d.Details, Status: StatusOpen,
			AutoResponse: d.AutoResponse, ReferencesAnomalyID: d.ReferencesAnomalyID,
			CreatedAt: e.OccurredAt, UpdatedAt: e.OccurredAt,
		}
	case EventAnomalyInvestigationStarted:
		d, err := payloadOf[AnomalyInvestigationStarted](e)
		if err != nil {
			return err
		}
		s.Status, s.Assignee, s.UpdatedAt = StatusInvestigating, d.Assignee, e.OccurredAt
		if d.Notes != nil {
			s.Notes = d.Notes
		}
	case EventAnomalyResolved:
		d, err := payloadOf[AnomalyResolved](e)
		if err != nil {
			return err
		}
		at, by := e.OccurredAt, interned(d.ResolvedBy)
		s.Status, s.Resolution, s.ResolvedBy = StatusResolved, interned(d.Resolution), &by
		if d.Notes != nil {
			s.Notes = d.Notes
		}
		s.ResolvedAt, s.UpdatedAt = &at, at
	case EventAnomalyDismissed:
		d, err := payloadOf[AnomalyDismissed](e)
		if err != nil {
			return err
		}
		at := e.OccurredAt
		s.Status, s.DismissReason, s.ResolvedAt, s.UpdatedAt = StatusDismissed, &d.Reason, &at, at
	default:
		return Errorf(EINTERNAL, "anomaly %s: unknown event type %q", s.ID, e.Type)
	}
	s.Version, s.Hash = e.Version, e.Hash
	return nil
}

// interned returns the one shared copy of s. A state keeps a few strings that
// take few distinct values (tenant, type, severity, resolution, actor); the
// read models keep a state per anomaly, and every copy would be a heap object
// for each garbage collection to mark.
func interned[S ~string](s S) S { return S(unique.Make(string(s)).Value()) }

// Intern makes s share its strings that take few values with every other
// state, as Apply does, for a state built otherwise (read back from a
// read model's snapshot).
func (s *AnomalyState) Intern() {
	s.Tenant, s.AnomalyType, s.Severity = interned(s.Tenant), interned(s.AnomalyType), interned(s.Severity)
	s.Status, s.Resolution = interned(s.Status), interned(s.Resolution)
	if s.ResolvedBy != nil {
		by := interned(*s.ResolvedBy)
		s.ResolvedBy = &by
	}
}

// Anomaly is the aggregate: its folded state and the events recorded by the
// commands called on it since it was loaded.
type Anomaly struct {
	state   AnomalyState
	changes []Event
}

// LoadAnomaly rebuilds an anomaly from its events, oldest first, after checking
// their hash chain. It returns a NOT_FOUND *Error when there are none and an
// INTERNAL_ERROR *Error when the chain is broken or they do not fold.
func LoadAnomaly(events []Event) (*Anomaly, error) {
	if len(events) == 0 {
		return nil, Errorf(ENOTFOUND, "anomaly not found")
	}
	if err := VerifyChain(events); err != nil {
		return nil, err
	}
	a := &Anomaly{}
	for _, e := range events {
		if err := a.state.Apply(e); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// ResumeAnomaly returns the anomaly in state s without its events, for a
// caller that keeps the state of anomalies it loaded (LoadAnomaly, chain
// checked) or changed (State after a recorded command). The chain is not
// checked again: the next event links to s.Hash, and an append expecting
// s.Version fails if the stream has moved on.
func ResumeAnomaly(s AnomalyState) *Anomaly { return &Anomaly{state: s} }

// State returns a copy of the anomaly's current state, changes included.
func (a *Anomaly) State() AnomalyState { return a.state }

// Changes returns the events recorded since the anomaly was loaded.
func (a *Anomaly) Changes() []Event { return a.changes }

// LoadedVersion returns the version the stream had when the anomaly was loaded:
// the expected version of an append of Changes.
func (a *Anomaly) LoadedVersion() uint64 { return a.state.Version - uint64(len(a.changes)) }

func (a *Anomaly) record(m Meta, typ string, data any) error {
	e, err := newEvent(m, AnomalyStream(a.state.Tenant, a.state.ID), a.state.Version+1, a.state.Hash, typ, data)
	if err != nil {
		return err
	}
	if err := a.state.Apply(e); err != nil {
		return err
	}
	a.changes = append(a.changes, e)
	return nil
}

// ReportAnomaly is the command that opens an anomaly against an agent.
type ReportAnomaly struct {
	Tenant              string
	AnomalyID           uuid.UUID
	AgentID             uuid.UUID
	AnomalyType         string
	Severity            Severity
	Description         *string
	Details             json.RawMessage
	ReferencesAnomalyID *uuid.UUID
}

// Report opens a new anomaly, applying the auto-response policy p gives its
// severity. It returns an INVALID_INPUT *Error for an input that breaks a rule.
func Report(cmd ReportAnomaly, p Policy, m Meta) (*Anomaly, error) {
	if err := cmd.validate(); err != nil {
		return nil, err
	}
	details := cmd.Details
	if len(details) == 0 || bytes.Equal(details, []byte("null")) {
		details = json.RawMessage("{}")
	}
	a := &Anomaly{state: AnomalyState{ID: cmd.AnomalyID, Tenant: cmd.Tenant}}
	err := a.record(m, EventAnomalyReported, AnomalyReported{
		AnomalyID: cmd.AnomalyID, AgentID: cmd.AgentID, AnomalyType: cmd.AnomalyType,
		Severity: cmd.Severity, Description: cmd.Description, Details: details,
		AutoResponse: p.AutoResponse(cmd.Severity), ReferencesAnomalyID: cmd.ReferencesAnomalyID,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (cmd ReportAnomaly) validate() error {
	switch {
	case !ValidTenant(cmd.Tenant):
		return invalidField("tenant", "tenant must match [A-Za-z0-9_-]{1,64}")
	case cmd.AnomalyID == uuid.Nil:
		return invalidField("anomaly_id", "anomaly id is required")
	case cmd.AgentID == uuid.Nil:
		return invalidField("agent_id", "agent_id must be a non-nil UUID")
	case !ValidAnomalyType(cmd.AnomalyType):
		return invalidField("anomaly_type", "anomaly_type must match [a-z0-9_.-]{1,64}")
	case cmd.ReferencesAnomalyID != nil && *cmd.ReferencesAnomalyID == cmd.AnomalyID:
		return invalidField("references_anomaly_id", "an anomaly cannot reference itself")
	}
	if _, err := ParseSeverity(string(cmd.Severity)); err != nil {
		return err
	}
	if cmd.Description != nil {
		if err := checkText("description", *cmd.Description, MaxDescriptionBytes); err != nil {
			return err
		}
	}
	if len(cmd.Details) > MaxDetailsBytes {
		return invalidField("details", fmt.Sprintf("details must be at most %d bytes", MaxDetailsBytes))
	}
	if !utf8.Valid(cmd.Details) {
		return invalidField("details", "details must be valid UTF-8")
	}
	if len(cmd.Details) > 0 && !bytes.Equal(cmd.Details, []byte("null")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cmd.Details, &obj); err != nil {
			return invalidField("details", "details must be a JSON object")
		}
	}
	return nil
}

// ResolveAnomaly is the command that closes an anomaly with a determination.
type ResolveAnomaly struct {
	Resolution Resolution
	Notes      *string
	ResolvedBy *string // nil: the authenticated principal
}

// Resolve closes the anomaly with a resolution. It returns a CONFLICT *Error,
// with the current status in its details, when the anomaly is already closed,
// and an INVALID_INPUT *Error for an input that breaks a rule.
func (a *Anomaly) Resolve(cmd ResolveAnomaly, m Meta) error {
	if _, err := ParseResolution(string(cmd.Resolution)); err != nil {
		return err
	}
	if cmd.Notes != nil {
		if err := checkText("notes", *cmd.Notes, MaxNotesBytes); err != nil {
			return err
		}
	}
	resolvedBy := m.Actor.ID
	if cmd.ResolvedBy != nil {
		if err := checkName("resolved_by", *cmd.ResolvedBy); err != nil {
			return err
		}
		resolvedBy = *cmd.ResolvedBy
	}
	if err := a.refuseTerminal(); err != nil {
		return err
	}
	return a.record(m, EventAnomalyResolved, AnomalyResolved{
		AnomalyID: a.state.ID, AgentID: a.state.AgentID, Resolution: cmd.Resolution,
		Notes: cmd.Notes, ResolvedBy: resolvedBy,
	})
}

// InvestigateAnomaly is the command that starts the investigation of an anomaly.
type InvestigateAnomaly struct {
	Assignee *string
	Notes    *string
}

// Investigate moves an open anomaly to investigating. It returns a CONFLICT
// *Error, with the current status in its details, unless the anomaly is open,
// and an INVALID_INPUT *Error for an input that breaks a rule.
func (a *Anomaly) Investigate(cmd InvestigateAnomaly, m Meta) error {
	if cmd.Assignee != nil {
		if err := checkName("assignee", *cmd.Assignee); err != nil {
			return err
		}
	}
	if cmd.Notes != nil {
		if err := checkText("notes", *cmd.Notes, MaxNotesBytes); err != nil {
			return err
		}
	}
	if err := a.refuseTerminal(); err != nil {
		return err
	}
	if a.state.Status != StatusOpen {
		return a.conflict("only an open anomaly can move to investigating")
	}
	return a.record(m, EventAnomalyInvestigationStarted, AnomalyInvestigationStarted{
		AnomalyID: a.state.ID, AgentID: a.state.AgentID, Assignee: cmd.Assignee, Notes: cmd.Notes,
	})
}

// DismissAnomaly is the command that closes an anomaly without a determination.
type DismissAnomaly struct {
	Reason string
}

// Dismiss closes an open or investigating anomaly without a determination,
// which reverses its auto-response. It returns a CONFLICT *Error when the
// anomaly is already closed and an INVALID_INPUT *Error without a reason.
func (a *Anomaly) Dismiss(cmd DismissAnomaly, m Meta) error {
	if strings.TrimSpace(cmd.Reason) == "" {
		return invalidField("reason", "reason is required")
	}
	if err := checkText("reason", cmd.Reason, MaxNotesBytes); err != nil {
		return err
	}
	if err := a.refuseTerminal(); err != nil {
		return err
	}
	return a.record(m, EventAnomalyDismissed, AnomalyDismissed{
		AnomalyID: a.state.ID, AgentID: a.state.AgentID, Reason: cmd.Reason,
	})
}

func (a *Anomaly) conflict(msg string) error {
	return &Error{Code: ECONFLICT, Message: msg, Details: map[string]any{"status": string(a.state.Status)}}
}

func (a *Anomaly) refuseTerminal() error {
	if !a.state.Status.Terminal() {
		return nil
	}
	return &Error{Code: ECONFLICT, Message: fmt.Sprintf("anomaly is %s and can no longer change", a.state.Status),
		Details: map[string]any{"status": string(a.state.Status)}}
}

func invalidField(field, msg string) error {
	return &Error{Code: EINVALID, Message: msg, Details: map[string]any{"field": field}}
}

// checkName checks a short identifier of a person or system: not blank, at
// most MaxActorNameBytes, valid UTF-8.
func checkName(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return invalidField(field, field+" must not be empty")
	}
	return checkText(field, s, MaxActorNameBytes)
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalidField(field, fmt.Sprintf("%s must be at most %d bytes", field, max))
	}
	if !utf8.ValidString(s) {
		return invalidField(field, field+" must be valid UTF-8")
	}
	return nil
}
