package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
)

// policyActor is the actor of policy changes that come from configuration.
var policyActor = domain.Actor{ID: "keys-file", Kind: domain.ActorSystem}

// SetPolicy records p as tenant's auto-response policy, from source, unless it is
// in force already; it reports whether it recorded a change. It returns
// INVALID_INPUT for a policy that breaks a rule and INTERNAL_ERROR when the
// store fails.
func (s *Service) SetPolicy(ctx context.Context, tenant string, p domain.Policy, source string) (bool, error) {
	stream := domain.PolicyStream(tenant)
	for attempt := 1; ; attempt++ {
		recs, err := s.store.ReadStream(ctx, stream, 0)
		if err != nil {
			return false, fmt.Errorf("load %s: %w", stream, err)
		}
		t, err := domain.LoadPolicy(tenant, events(recs))
		if err != nil {
			return false, err
		}
		changed, err := t.Change(p, source, domain.Meta{EventID: s.newID(), At: s.now().UTC(), Actor: policyActor, Decode: eventstore.DecodeData})
		if err != nil || !changed {
			return false, err
		}
		_, err = s.appendAll(ctx, t.LoadedVersion(), t.Changes())
		if errors.Is(err, domain.ErrConcurrency) && attempt < maxAttempts {
			continue
		}
		return err == nil, err
	}
}
