package domain

import (
	"encoding/json"

	"github.com/google/uuid"
)

// Event types of the anomaly aggregate. They are stored in the log: never rename one.
const (
	EventAnomalyReported             = "anomaly.reported"
	EventAnomalyInvestigationStarted = "anomaly.investigation_started"
	EventAnomalyResolved             = "anomaly.resolved"
	EventAnomalyDismissed            = "anomaly.dismissed"
)

// AnomalyReported is the payload of anomaly.reported: a new anomaly against an
// agent, with the auto-response the tenant's policy applied to it.
type AnomalyReported struct {
	AnomalyID           uuid.UUID       `json:"anomaly_id"`
	AgentID             uuid.UUID       `json:"agent_id"`
	AnomalyType         string          `json:"anomaly_type"`
	Severity            Severity        `json:"severity"`
	Description         *string         `json:"description"`
	Details             json.RawMessage `json:"details"`
	AutoResponse        Containment     `json:"auto_response"`
	ReferencesAnomalyID *uuid.UUID      `json:"references_anomaly_id"`
}

// AnomalyResolved is the payload of anomaly.resolved. ResolvedBy is the resolver
// as the client named it, or the authenticated principal when it named none; the
// envelope's actor always holds the authenticated principal.
type AnomalyResolved struct {
	AnomalyID  uuid.UUID  `json:"anomaly_id"`
	AgentID    uuid.UUID  `json:"agent_id"`
	Resolution Resolution `json:"resolution"`
	Notes      *string    `json:"notes"`
	ResolvedBy string     `json:"resolved_by"`
}

// AnomalyInvestigationStarted is the payload of anomaly.investigation_started.
type AnomalyInvestigationStarted struct {
	AnomalyID uuid.UUID `json:"anomaly_id"`
	AgentID   uuid.UUID `json:"agent_id"`
	Assignee  *string   `json:"assignee"`
	Notes     *string   `json:"notes"`
}

// AnomalyDismissed is the payload of anomaly.dismissed: closed without a
// determination, which reverses the auto-response.
type AnomalyDismissed struct {
	AnomalyID uuid.UUID `json:"anomaly_id"`
	AgentID   uuid.UUID `json:"agent_id"`
	Reason    string    `json:"reason"`
}
