package domain

import (
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CategoryAgent is the stream category of agents: their manual restores and
// revocations. Containment by anomalies lives in the anomalies' own streams.
const CategoryAgent = "agent"

// Event types of the agent aggregate. They are stored in the log: never rename one.
const (
	EventAgentRestored = "agent.restored"
	EventAgentRevoked  = "agent.revoked"
)

// AgentRestored is the payload of agent.restored: an operator released the
// mitigated holds listed in Released.
type AgentRestored struct {
	AgentID  uuid.UUID   `json:"agent_id"`
	Released []uuid.UUID `json:"released"`
	Notes    *string     `json:"notes"`
}

// AgentRevoked is the payload of agent.revoked: an operator revoked the agent
// for good.
type AgentRevoked struct {
	AgentID uuid.UUID `json:"agent_id"`
	Reason  string    `json:"reason"`
}

// AgentStream returns the stream of one agent of a tenant.
func AgentStream(tenant string, id uuid.UUID) StreamID {
	return StreamID{Tenant: tenant, Category: CategoryAgent, ID: id.String()}
}

// Hold is one anomaly's containment of an agent, and why it still holds.
type Hold struct {
	AnomalyID   uuid.UUID
	Containment Containment
	Reason      string // the anomaly's status ("open", "investigating") or "mitigated"
}

// AgentContainment is the containment of one agent folded from the events of all
// of its anomalies in a tenant. Its zero value is an agent that nothing holds.
type AgentContainment struct {
	holds     map[uuid.UUID]Hold
	revoked   bool
	known     bool // an anomaly of the agent was reported in this tenant
	updatedAt time.Time
}

// AgentStatus returns the wire name of an agent's effective status for c:
// "active" when nothing contains it.
func AgentStatus(c Containment) string {
	if c == ContainmentNone {
		return "active"
	}
	return c.String()
}

// AgentOf returns the agent that an event concerns, and false for an event that
// concerns no agent.
func AgentOf(e Event) (uuid.UUID, bool) {
	var p interface{ agent() uuid.UUID }
	var err error
	switch e.Type {
	case EventAnomalyReported:
		p, err = payloadPtr[AnomalyReported](e)
	case EventAnomalyInvestigationStarted:
		p, err = payloadPtr[AnomalyInvestigationStarted](e)
	case EventAnomalyResolved:
		p, err = payloadPtr[AnomalyResolved](e)
	case EventAnomalyDismissed:
		p, err = payloadPtr[AnomalyDismissed](e)
	case EventAgentRestored:
		p, err = payloadPtr[AgentRestored](e)
	case EventAgentRevoked:
		p, err = payloadPtr[AgentRevoked](e)
	default:
		return uuid.Nil, false
	}
	if err != nil || p.agent() == uuid.Nil {
		return uuid.Nil, false
	}
	return p.agent(), true
}

func (d AnomalyReported) agent() uuid.UUID             { return d.AgentID }
func (d AnomalyInvestigationStarted) agent() uuid.UUID { return d.AgentID }
func (d AnomalyResolved) agent() uuid.UUID             { return d.AgentID }
func (d AnomalyDismissed) agent() uuid.UUID            { return d.AgentID }
func (d AgentRestored) agent() uuid.UUID               { return d.AgentID }
func (d AgentRevoked) agent() uuid.UUID                { return d.AgentID }

// Apply folds an event that concerns this agent. Events of other kinds are
// ignored. It returns an INTERNAL_ERROR *Error for an event that does not decode.
func (a *AgentContainment) Apply(e Event) error {
	// The map of holds exists only while something holds the agent: a read
	// model keeps one containment per agent, most of them holding nothing.
	defer func() {
		if len(a.holds) == 0 {
			a.holds = nil
		}
	}()
	switch e.Type {
	case EventAnomalyReported:
		d, err := payloadOf[AnomalyReported](e)
		if err != nil {
			return err
		}
		a.known = true
		if d.AutoResponse > ContainmentNone {
			if a.holds == nil {
				a.holds = make(map[uuid.UUID]Hold, 1)
			}
			a.holds[d.AnomalyID] = Hold{AnomalyID: d.AnomalyID, Containment: d.AutoResponse, Reason: string(StatusOpen)}
		}
	case EventAnomalyInvestigationStarted:
		d, err := payloadOf[AnomalyInvestigationStarted](e)
		if err != nil {
			return err
		}
		if h, ok := a.holds[d.AnomalyID]; ok {
			h.Reason = string(StatusInvestigating)
			a.holds[d.AnomalyID] = h
		}
	case EventAnomalyResolved:
		d, err := payloadOf[AnomalyResolved](e)
		if err != nil {
			return err
		}
		switch d.Resolution.Effect() {
		case EffectRelease:
			delete(a.holds, d.AnomalyID)
		case EffectKeep:
			if h, ok := a.holds[d.AnomalyID]; ok {
				h.Reason = string(ResolutionMitigated)
				a.holds[d.AnomalyID] = h
			}
		case EffectRevoke:
			delete(a.holds, d.AnomalyID)
			a.revoked = true
		}
	case EventAnomalyDismissed:
		d, err := payloadOf[AnomalyDismissed](e)
		if err != nil {
			return err
		}
		delete(a.holds, d.AnomalyID)
	case EventAgentRestored:
		d, err := payloadOf[AgentRestored](e)
		if err != nil {
			return err
		}
		for _, id := range d.Released {
			if h, ok := a.holds[id]; ok && h.Reason == string(ResolutionMitigated) {
				delete(a.holds, id)
			}
		}
	case EventAgentRevoked:
		a.revoked = true
	default:
		return nil
	}
	a.updatedAt = e.OccurredAt
	return nil
}

// Known reports whether an anomaly of the agent was ever reported in the tenant.
func (a *AgentContainment) Known() bool { return a.known }

// UpdatedAt returns the time of the last event that concerned the agent.
func (a *AgentContainment) UpdatedAt() time.Time { return a.updatedAt }

// Clone returns a copy that shares nothing with a.
func (a *AgentContainment) Clone() AgentContainment {
	c := *a
	c.holds = maps.Clone(a.holds)
	return c
}

// AgentRecord is an AgentContainment as plain data, for a read model kept on
// disk: r.Containment() of a.Record() folds every later event as a does.
type AgentRecord struct {
	Holds     []Hold    `json:"holds"` // as Holds returns them
	Revoked   bool      `json:"revoked"`
	Known     bool      `json:"known"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Record returns a as plain data.
func (a *AgentContainment) Record() AgentRecord {
	return AgentRecord{Holds: a.Holds(), Revoked: a.revoked, Known: a.known, UpdatedAt: a.updatedAt}
}

// Containment returns the containment r records, its holds' reasons shared
// with every other containment's, as those Apply sets are.
func (r AgentRecord) Containment() AgentContainment {
	c := AgentContainment{revoked: r.Revoked, known: r.Known, updatedAt: r.UpdatedAt}
	if len(r.Holds) > 0 {
		c.holds = make(map[uuid.UUID]Hold, len(r.Holds))
		for _, h := range r.Holds {
			h.Reason = interned(h.Reason)
			c.holds[h.AnomalyID] = h
		}
	}
	return c
}

// Agent is the aggregate of an agent's manual decisions: restores and
// revocations. Its stream's version orders concurrent decisions on one agent;
// what they may do depends on the agent's containment, which the caller folds
// from the whole log and passes in.
type Agent struct {
	stream  StreamID
	version uint64
	hash    string
	changes []Event
}

// LoadAgent rebuilds an agent from the events of its stream (none for an agent
// no one has restored or revoked yet). It returns an INTERNAL_ERROR *Error when
// their hash chain is broken.
func LoadAgent(tenant string, id uuid.UUID, events []Event) (*Agent, error) {
	a := &Agent{stream: AgentStream(tenant, id)}
	if err := VerifyChain(events); err != nil {
		return nil, err
	}
	for _, e := range events {
		a.version, a.hash = e.Version, e.Hash
	}
	return a, nil
}

// Changes returns the events recorded since the agent was loaded.
func (a *Agent) Changes() []Event { return a.changes }

// LoadedVersion returns the version the agent's stream had when it was loaded.
func (a *Agent) LoadedVersion() uint64 { return a.version - uint64(len(a.changes)) }

func (a *Agent) record(m Meta, typ string, data any) error {
	e, err := newEvent(m, a.stream, a.version+1, a.hash, typ, data)
	if err != nil {
		return err
	}
	a.version, a.hash = e.Version, e.Hash
	a.changes = append(a.changes, e)
	return nil
}

// RestoreAgent is the command that releases an agent's mitigated holds.
type RestoreAgent struct {
	Notes *string
}

// Restore releases the mitigated holds on the agent, given its containment c.
// It returns NOT_FOUND for an agent with no anomaly in the tenant, and CONFLICT
// when the agent is revoked, while an open or investigating anomaly still holds
// it, or when no mitigated hold is left to release.
func (a *Agent) Restore(c *AgentContainment, cmd RestoreAgent, m Meta) error {
	if cmd.Notes != nil {
		if err := checkText("notes", *cmd.Notes, MaxNotesBytes); err != nil {
			return err
		}
	}
	if err := agentConflicts(c); err != nil {
		return err
	}
	var open, mitigated []uuid.UUID
	for _, h := range c.Holds() {
		if h.Reason == string(ResolutionMitigated) {
			mitigated = append(mitigated, h.AnomalyID)
		} else {
			open = append(open, h.AnomalyID)
		}
	}
	status := AgentStatus(c.Status())
	if len(open) > 0 {
		return &Error{Code: ECONFLICT, Message: "open anomalies still hold the agent; close them first",
			Details: map[string]any{"status": status, "holding_anomalies": open}}
	}
	if len(mitigated) == 0 {
		return &Error{Code: ECONFLICT, Message: "no mitigated hold is left to release",
			Details: map[string]any{"status": status}}
	}
	return a.record(m, EventAgentRestored, AgentRestored{AgentID: a.agentID(), Released: mitigated, Notes: cmd.Notes})
}

// RevokeAgent is the command that revokes an agent for good.
type RevokeAgent struct {
	Reason string
}

// Revoke revokes the agent for good. It returns INVALID_INPUT without a reason,
// NOT_FOUND for an agent with no anomaly in the tenant, and CONFLICT when it is
// revoked already.
func (a *Agent) Revoke(c *AgentContainment, cmd RevokeAgent, m Meta) error {
	if strings.TrimSpace(cmd.Reason) == "" {
		return invalidField("reason", "reason is required")
	}
	if err := checkText("reason", cmd.Reason, MaxNotesBytes); err != nil {
		return err
	}
	if err := agentConflicts(c); err != nil {
		return err
	}
	return a.record(m, EventAgentRevoked, AgentRevoked{AgentID: a.agentID(), Reason: cmd.Reason})
}

func agentConflicts(c *AgentContainment) error {
	if !c.Known() {
		return Errorf(ENOTFOUND, "agent not found")
	}
	if c.Status() == ContainmentRevoked {
		return &Error{Code: ECONFLICT, Message: "the agent is revoked for good",
			Details: map[string]any{"status": AgentStatus(ContainmentRevoked)}}
	}
	return nil
}

func (a *Agent) agentID() uuid.UUID { return uuid.MustParse(a.stream.ID) }

// Status returns the agent's effective containment: revoked once any revocation
// exists, else the strongest containment held by any of its anomalies.
func (a *AgentContainment) Status() Containment {
	if a.revoked {
		return ContainmentRevoked
	}
	c := ContainmentNone
	for _, h := range a.holds {
		c = max(c, h.Containment)
	}
	return c
}

// Holds returns the anomalies holding the agent, strongest first, then by id.
func (a *AgentContainment) Holds() []Hold {
	out := make([]Hold, 0, len(a.holds))
	for _, h := range a.holds {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Containment != out[j].Containment {
			return out[i].Containment > out[j].Containment
		}
		return out[i].AnomalyID.String() < out[j].AnomalyID.String()
	})
	return out
}
