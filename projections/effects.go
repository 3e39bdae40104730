package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// effectNamespace derives an effect's id from the id of the event that caused it,
// so that a re-publish after a crash carries the same id and is dropped.
var effectNamespace = uuid.MustParse("6f1d6c55-2b1e-4c55-9d67-8b0c2a4a7e11")

// EffectID returns the id of the effect caused by the event with id eventID.
func EffectID(eventID uuid.UUID) uuid.UUID { return uuid.NewSHA1(effectNamespace, eventID[:]) }

// EffectSubject returns the NATS subject of an agent's effects.
func EffectSubject(tenant string, agent uuid.UUID) string {
	return "maip.effects." + tenant + ".agent." + agent.String()
}

// Effect is one message for agent-control subscribers.
type Effect struct {
	ID            uuid.UUID
	Subject       string
	CausePosition uint64 // store position of the causing event
	Body          []byte // a CloudEvents 1.0 JSON document
}

// EffectSink stores effects where subscribers read them.
type EffectSink interface {
	// Publish stores e and returns once the store acknowledged it. A second
	// publish of the same effect id is dropped by the sink.
	Publish(ctx context.Context, e Effect) error
	// LastCause returns the CausePosition of the last effect stored, 0 if none.
	LastCause(ctx context.Context) (uint64, error)
}

// CloudEvent is the envelope of an effect, CloudEvents 1.0 in JSON.
type CloudEvent struct {
	SpecVersion     string     `json:"specversion"`
	ID              string     `json:"id"`
	Source          string     `json:"source"`
	Type            string     `json:"type"`
	Subject         string     `json:"subject"`
	Time            time.Time  `json:"time"`
	DataContentType string     `json:"datacontenttype"`
	Data            EffectData `json:"data"`
}

// EffectData is what an effect says: which agent moved from which status to
// which, and the anomaly, resolution and event that caused it.
type EffectData struct {
	TenantID       string     `json:"tenant_id"`
	AgentID        uuid.UUID  `json:"agent_id"`
	PreviousStatus string     `json:"previous_status"`
	Status         string     `json:"status"`
	AnomalyID      *uuid.UUID `json:"anomaly_id"`
	Resolution     *string    `json:"resolution"`
	CauseEventID   uuid.UUID  `json:"cause_event_id"`
	CauseEventType string     `json:"cause_event_type"`
}

// EffectType returns the CloudEvents type announcing that an agent is now in
// containment c: agent.restored when nothing contains it any more.
func EffectType(c domain.Containment) string {
	if c == domain.ContainmentNone {
		return "agent.restored"
	}
	return "agent." + c.String()
}

type agentKey struct {
	tenant string
	agent  uuid.UUID
}

// Effects folds every agent's containment from the log and publishes an effect
// for each change of an agent's effective status, and only then. Events at or
// before the cause of the last stored effect were published by an earlier run:
// they are folded but not published again.
type Effects struct {
	sink   EffectSink
	logger *slog.Logger
	agents map[agentKey]*domain.AgentContainment
	resume uint64 // cause of the last stored effect when the run began
	loaded bool
}

// NewEffects returns an effects publisher that publishes to sink.
func NewEffects(sink EffectSink, logger *slog.Logger) *Effects {
	return &Effects{sink: sink, logger: logger, agents: make(map[agentKey]*domain.AgentContainment)}
}

// Apply folds one event and publishes the effect it causes, if any. It returns
// the sink's error when a publish fails (the runner stops; a restart resumes
// after the last stored effect).
func (p *Effects) Apply(ctx context.Context, r eventstore.Recorded) error {
	if !p.loaded {
		last, err := p.sink.LastCause(ctx)
		if err != nil {
			return fmt.Errorf("effects: find last published effect: %w", err)
		}
		p.resume, p.loaded = last, true
	}
	agent, ok := domain.AgentOf(r.Event)
	if !ok {
		return nil
	}
	key := agentKey{r.TenantID, agent}
	c := p.agents[key]
	if c == nil {
		c = &domain.AgentContainment{}
		p.agents[key] = c
	}
	before := c.Status()
	if err := c.Apply(r.Event); err != nil {
		return err
	}
	after := c.Status()
	if before == after || r.Position <= p.resume {
		return nil
	}
	e, err := newEffect(r, agent, before, after)
	if err != nil {
		return err
	}
	if err := p.sink.Publish(ctx, e); err != nil {
		return fmt.Errorf("effects: publish %s for event %s: %w", e.ID, r.ID, err)
	}
	p.logger.Debug("effect published", "tenant", r.TenantID, "agent", agent, "status", domain.AgentStatus(after))
	return nil
}

func newEffect(r eventstore.Recorded, agent uuid.UUID, before, after domain.Containment) (Effect, error) {
	data := EffectData{
		TenantID: r.TenantID, AgentID: agent,
		PreviousStatus: domain.AgentStatus(before), Status: domain.AgentStatus(after),
		CauseEventID: r.ID, CauseEventType: r.Type,
	}
	if r.Stream.Category == domain.CategoryAnomaly {
		if id, err := uuid.Parse(r.Stream.ID); err == nil {
			data.AnomalyID = &id
		}
	}
	if r.Type == domain.EventAnomalyResolved {
		var d domain.AnomalyResolved
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return Effect{}, domain.Errorf(domain.EINTERNAL, "decode %s: %v", r.ID, err)
		}
		res := string(d.Resolution)
		data.Resolution = &res
	}
	id := EffectID(r.ID)
	body, err := json.Marshal(CloudEvent{
		SpecVersion: "1.0", ID: id.String(), Source: "/anomalyd/tenants/" + r.TenantID,
		Type: EffectType(after), Subject: agent.String(), Time: r.OccurredAt.UTC(),
		DataContentType: "application/json", Data: data,
	})
	if err != nil {
		return Effect{}, err
	}
	return Effect{ID: id, Subject: EffectSubject(r.TenantID, agent), CausePosition: r.Position, Body: body}, nil
}
