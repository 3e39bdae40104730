package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// Containments gives an agent's containment folded from the whole log, up to
// date with the store at least as of the call.
type Containments interface {
	Containment(ctx context.Context, tenant string, agent uuid.UUID) (domain.AgentContainment, error)
}

// AgentResult is the outcome of an agent command: the store position of the
// recorded event, which a reader waits for to see it.
type AgentResult struct {
	Position uint64
}

// Restore releases the mitigated holds on an agent of the principal's tenant.
// It returns NOT_FOUND for an agent without anomalies in the tenant, CONFLICT
// when it is revoked, still held by an open anomaly, or has nothing to release,
// and INTERNAL_ERROR when the store fails.
func (s *Service) Restore(ctx context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RestoreAgent) (AgentResult, error) {
	return s.updateAgent(ctx, p, agent, func(a *domain.Agent, ac *domain.AgentContainment) error {
		return a.Restore(ac, cmd, s.meta(ctx, p))
	})
}

// Revoke revokes an agent of the principal's tenant for good. It returns
// INVALID_INPUT without a reason, NOT_FOUND for an agent without anomalies in
// the tenant, CONFLICT when it is revoked already, and INTERNAL_ERROR.
func (s *Service) Revoke(ctx context.Context, p domain.Principal, agent uuid.UUID, cmd domain.RevokeAgent) (AgentResult, error) {
	return s.updateAgent(ctx, p, agent, func(a *domain.Agent, ac *domain.AgentContainment) error {
		return a.Revoke(ac, cmd, s.meta(ctx, p))
	})
}

// updateAgent decides an agent command on the agent's containment as of now and
// appends it with the version of the agent's own stream, so that two decisions
// on one agent are ordered and the second is taken knowing the first.
func (s *Service) updateAgent(ctx context.Context, p domain.Principal, agent uuid.UUID,
	decide func(*domain.Agent, *domain.AgentContainment) error) (AgentResult, error) {
	stream := domain.AgentStream(p.Tenant, agent)
	cmd, hasID := commandID(ctx)
	for attempt := 1; ; attempt++ {
		recs, err := s.store.ReadStream(ctx, stream, 0)
		if err != nil {
			return AgentResult{}, fmt.Errorf("load %s: %w", stream, err)
		}
		if mine, ok := ownEvent(recs, cmd); hasID && ok {
			return AgentResult{Position: mine[len(mine)-1].Position}, nil
		}
		a, err := domain.LoadAgent(p.Tenant, agent, events(recs))
		if err != nil {
			return AgentResult{}, err
		}
		if s.agents == nil {
			return AgentResult{}, domain.Errorf(domain.EINTERNAL, "agent commands need the agent read model")
		}
		ac, err := s.agents.Containment(ctx, p.Tenant, agent)
		if err != nil {
			return AgentResult{}, err
		}
		if err := decide(a, &ac); err != nil {
			return AgentResult{}, err
		}
		rec, err := s.appendAll(ctx, a.LoadedVersion(), a.Changes())
		if errors.Is(err, domain.ErrConcurrency) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return AgentResult{}, err
		}
		return AgentResult{Position: rec.Position}, nil
	}
}

func events(recs []eventstore.Recorded) []domain.Event {
	out := make([]domain.Event, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}
