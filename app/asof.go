package app

import (
	"context"
	"fmt"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// AnomalyAt returns an anomaly of the principal's tenant as it was at time at,
// folded from its events in the log. It returns NOT_FOUND when the anomaly did
// not exist then, and INTERNAL_ERROR when the store fails.
func (s *Service) AnomalyAt(ctx context.Context, p domain.Principal, id uuid.UUID, at time.Time) (domain.AnomalyState, error) {
	evs, err := s.AnomalyEvents(ctx, p, id)
	if err != nil {
		return domain.AnomalyState{}, err
	}
	st, ok, err := projections.AnomalyAt(evs, at)
	if err != nil {
		return domain.AnomalyState{}, err
	}
	if !ok {
		return domain.AnomalyState{}, domain.Errorf(domain.ENOTFOUND, "anomaly %s did not exist at %s", id, at.Format(time.RFC3339))
	}
	return st, nil
}

// AgentAt returns an agent of the principal's tenant as it was at time at,
// folded from the streams of the given anomalies of the agent and the agent's
// own stream, in store order. It returns NOT_FOUND when no anomaly of the agent
// existed then, and INTERNAL_ERROR when the store fails.
func (s *Service) AgentAt(ctx context.Context, p domain.Principal, agent uuid.UUID, anomalies []uuid.UUID, at time.Time) (domain.AgentContainment, error) {
	streams := []domain.StreamID{domain.AgentStream(p.Tenant, agent)}
	for _, id := range anomalies {
		streams = append(streams, domain.AnomalyStream(p.Tenant, id))
	}
	var all []eventstore.Recorded
	for _, st := range streams {
		recs, err := s.store.ReadStream(ctx, st, 0)
		if err != nil {
			return domain.AgentContainment{}, fmt.Errorf("read %s: %w", st, err)
		}
		all = append(all, recs...)
	}
	c, ok, err := projections.AgentAt(all, agent, at)
	if err != nil {
		return domain.AgentContainment{}, err
	}
	if !ok {
		return domain.AgentContainment{}, domain.Errorf(domain.ENOTFOUND, "agent %s had no anomaly in this tenant at %s", agent, at.Format(time.RFC3339))
	}
	return c, nil
}
