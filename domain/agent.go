package domain

import (
	"sort"

	"github.com/google/uuid"
)

// Hold is one anomaly's containment of an agent, and why it still holds.
type Hold struct {
	AnomalyID   uuid.UUID
	Containment Containment
	Reason      string // the anomaly's status ("open", "investigating") or "mitigated"
}

// AgentContainment is the containment of one agent folded from the events of all
// of its anomalies in a tenant. Its zero value is an agent that nothing holds.
type AgentContainment struct {
	holds   map[uuid.UUID]Hold
	revoked bool
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
	var ref struct {
		AgentID uuid.UUID `json:"agent_id"`
	}
	switch e.Type {
	case EventAnomalyReported, EventAnomalyResolved:
		if decodeData(e, &ref) != nil || ref.AgentID == uuid.Nil {
			return uuid.Nil, false
		}
		return ref.AgentID, true
	}
	return uuid.Nil, false
}

// Apply folds an event that concerns this agent. Events of other kinds are
// ignored. It returns an INTERNAL_ERROR *Error for an event that does not decode.
func (a *AgentContainment) Apply(e Event) error {
	if a.holds == nil {
		a.holds = make(map[uuid.UUID]Hold)
	}
	switch e.Type {
	case EventAnomalyReported:
		var d AnomalyReported
		if err := decodeData(e, &d); err != nil {
			return err
		}
		if d.AutoResponse > ContainmentNone {
			a.holds[d.AnomalyID] = Hold{AnomalyID: d.AnomalyID, Containment: d.AutoResponse, Reason: string(StatusOpen)}
		}
	case EventAnomalyResolved:
		var d AnomalyResolved
		if err := decodeData(e, &d); err != nil {
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
	}
	return nil
}

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
