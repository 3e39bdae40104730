package http

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// Responses are encoded with segmentio/encoding/json for speed; they must be
// the bytes encoding/json would write: HTML characters and line separators
// escaped, details compacted, times in RFC 3339 with nanoseconds.
func TestResponsesAreWhatEncodingJSONWrites(t *testing.T) {
	desc := "<script>alert('x')</script> & \u2028 \u2029 é \x7f"
	notes := "line\nbreak \"quoted\" \\ tab\t"
	ref := uuid.New()
	at := time.Date(2026, 12, 4, 22, 6, 36, 123456789, time.UTC)
	resolved := at.Add(time.Hour)
	views := []projections.AnomalyView{
		{AnomalyState: domain.AnomalyState{ID: uuid.New(), Tenant: "acme", AgentID: uuid.New(), AnomalyType: "rate_spike",
			Severity: domain.SeverityHigh, Description: &desc, Details: json.RawMessage(`{ "rps" : 950, "html": "<b>", "n": [1, 2.5e3] }`),
			Status: domain.StatusResolved, AutoResponse: domain.ContainmentSuspended, Resolution: domain.ResolutionMitigated,
			Notes: &notes, ResolvedBy: &notes, ReferencesAnomalyID: &ref, CreatedAt: at, UpdatedAt: resolved, ResolvedAt: &resolved,
			Version: 3}, ReferencedBy: []uuid.UUID{uuid.New()}, Position: 7},
		{AnomalyState: domain.AnomalyState{ID: uuid.New(), Tenant: "acme", AgentID: uuid.New(), AnomalyType: "x",
			Severity: domain.SeverityLow, Details: json.RawMessage(`{}`), Status: domain.StatusOpen, CreatedAt: at, UpdatedAt: at, Version: 1}},
	}
	for _, v := range []any{
		AnomalyRepresentation(views[0]), AnomalyRepresentation(views[1]),
		map[string]any{"items": []any{AnomalyRepresentation(views[0])}, "next_cursor": nil},
		errorBody{Code: domain.EINVALID, Message: desc, Details: map[string]any{"field": "a<b"}, TraceID: "t"},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, v)
		if got := bytes.TrimSuffix(rec.Body.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Errorf("response body differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	}
}
