package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/projections"
)

// policySync records in each tenant's log the auto-response policy that the keys
// file configures, at start-up and whenever the file changes, so that every
// change of policy is an event with a time and a source.
type policySync struct {
	svc      *app.Service
	keys     *auth.Keyring
	recorded *projections.Policies
	runner   *projections.Runner
	logger   *slog.Logger
	source   string
	seen     uint64
}

// run records every difference between the file and the logs, then waits until
// the read model shows the recorded policies.
func (p *policySync) run(ctx context.Context) error {
	desired, gen := p.keys.Policies()
	p.seen = gen
	have := p.recorded.All()
	tenants := map[string]bool{}
	for t := range desired {
		tenants[t] = true
	}
	for t := range have {
		tenants[t] = true
	}
	changed := false
	for t := range tenants {
		want, ok := desired[t]
		if !ok {
			want = domain.DefaultPolicy() // removed from the file: back to the default
		}
		if cur, ok := have[t]; ok && cur.Equal(want) || !ok && want.Equal(domain.DefaultPolicy()) {
			continue
		}
		did, err := p.svc.SetPolicy(ctx, t, want, p.source)
		if err != nil {
			return err
		}
		if did {
			changed = true
			p.logger.Info("auto-response policy changed", "tenant", t, "policy", want.String(), "source", p.source)
		}
	}
	if changed {
		return p.runner.CatchUp(ctx)
	}
	return nil
}

// watch runs the sync whenever the keys file was reloaded, until ctx ends.
func (p *policySync) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, gen := p.keys.Policies(); gen == p.seen {
			continue
		}
		if err := p.run(ctx); err != nil && ctx.Err() == nil {
			p.logger.Error("auto-response policy not recorded; will retry", "err", err)
			p.seen = 0
		}
	}
}
