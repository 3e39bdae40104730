package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// state prints an anomaly or an agent as it was at a given time, folded from
// the log alone with the same fold as the live read model, in the API's
// representation.
func state(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("state", flag.ContinueOnError)
	fs.SetOutput(stderr)
	open := storeFlags(fs, getenv)
	atFlag := fs.String("at", "", "the RFC 3339 time to show the state at (required)")
	tenant := fs.String("tenant", "", "the tenant (required)")
	anomalyFlag := fs.String("anomaly", "", "the anomaly to show")
	agentFlag := fs.String("agent", "", "the agent to show")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, *atFlag)
	if err != nil {
		return fmt.Errorf("--at %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", *atFlag)
	}
	if !domain.ValidTenant(*tenant) {
		return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
	}
	if (*anomalyFlag == "") == (*agentFlag == "") {
		return errors.New("give exactly one of --anomaly and --agent")
	}
	store, closeStore, err := open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()

	var view any
	if *anomalyFlag != "" {
		id, err := uuid.Parse(*anomalyFlag)
		if err != nil {
			return fmt.Errorf("--anomaly %q: must be a UUID", *anomalyFlag)
		}
		view, err = anomalyAt(ctx, store, stderr, *tenant, id, at)
		if err != nil {
			return err
		}
	} else {
		id, err := uuid.Parse(*agentFlag)
		if err != nil {
			return fmt.Errorf("--agent %q: must be a UUID", *agentFlag)
		}
		var events []eventstore.Recorded
		err = scanLog(ctx, store, stderr, func(r eventstore.Recorded) error {
			if a, ok := domain.AgentOf(r.Event); ok && a == id && r.TenantID == *tenant && !r.OccurredAt.After(at) {
				events = append(events, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		c, ok, err := projections.AgentAt(events, id, at)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("agent %s had no anomaly in tenant %s at %s", id, *tenant, at.Format(time.RFC3339Nano))
		}
		view = anomalyhttp.AgentRepresentation(id, c)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(view)
}

// anomalyAt folds the anomaly's stream up to at, and finds in the log the later
// anomalies that referenced it by then.
func anomalyAt(ctx context.Context, store eventstore.Store, progress io.Writer, tenant string, id uuid.UUID, at time.Time) (any, error) {
	recs, err := store.ReadStream(ctx, domain.AnomalyStream(tenant, id), 0)
	if err != nil {
		return nil, err
	}
	evs := make([]domain.Event, len(recs))
	for i, r := range recs {
		evs[i] = r.Event
	}
	st, ok, err := projections.AnomalyAt(evs, at)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("anomaly %s did not exist in tenant %s at %s", id, tenant, at.Format(time.RFC3339Nano))
	}
	var refs []uuid.UUID
	err = scanLog(ctx, store, progress, func(r eventstore.Recorded) error {
		if r.Type != domain.EventAnomalyReported || r.TenantID != tenant || r.OccurredAt.After(at) {
			return nil
		}
		var d domain.AnomalyReported
		if err := json.Unmarshal(r.Data, &d); err == nil && d.ReferencesAnomalyID != nil && *d.ReferencesAnomalyID == id {
			refs = append(refs, d.AnomalyID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return anomalyhttp.AnomalyRepresentation(projections.AnomalyView{AnomalyState: st, ReferencedBy: refs}), nil
}
