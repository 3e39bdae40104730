package domain

import (
	"bytes"
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
// agent, with the auto-response the tenant's policy applied to it. It is schema
// version 2: details is always a JSON object ("{}" when none was given), and
// description and references_anomaly_id are always present, null when empty.
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

// anomalyReportedV1 is anomaly.reported at schema version 1, the format of the
// envelopes written without a schema_version: details could be null or missing,
// and description and references_anomaly_id were left out when empty.
type anomalyReportedV1 struct {
	AnomalyID           uuid.UUID       `json:"anomaly_id"`
	AgentID             uuid.UUID       `json:"agent_id"`
	AnomalyType         string          `json:"anomaly_type"`
	Severity            Severity        `json:"severity"`
	Description         *string         `json:"description,omitempty"`
	Details             json.RawMessage `json:"details"`
	AutoResponse        Containment     `json:"auto_response"`
	ReferencesAnomalyID *uuid.UUID      `json:"references_anomaly_id,omitempty"`
}

// upcastAnomalyReportedV1 turns anomaly.reported from version 1 into version 2:
// null or missing details become {}, a missing description or reference null.
func upcastAnomalyReportedV1(data json.RawMessage) (json.RawMessage, error) {
	var v1 anomalyReportedV1
	if err := json.Unmarshal(data, &v1); err != nil {
		return nil, err
	}
	details := v1.Details
	if len(details) == 0 || bytes.Equal(details, []byte("null")) {
		details = json.RawMessage("{}")
	}
	return json.Marshal(AnomalyReported{
		AnomalyID: v1.AnomalyID, AgentID: v1.AgentID, AnomalyType: v1.AnomalyType, Severity: v1.Severity,
		Description: v1.Description, Details: details, AutoResponse: v1.AutoResponse,
		ReferencesAnomalyID: v1.ReferencesAnomalyID,
	})
}
