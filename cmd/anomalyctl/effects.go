package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// effectsTail prints agent effects as they are stored, one CloudEvents JSON
// document a line, as an agent-control subscriber sees them.
func effectsTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("effects tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats-url", envOr(getenv, "ANOMALYD_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL (env ANOMALYD_NATS_URL)")
	tenant := fs.String("tenant", "", "only this tenant's effects")
	agent := fs.String("agent", "", "only this agent's effects (needs --tenant)")
	all := fs.Bool("all", false, "start from the first stored effect instead of new ones")
	limit := fs.Int("n", 0, "stop after this many effects (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	filter := "maip.effects.>"
	if *tenant != "" {
		if !domain.ValidTenant(*tenant) {
			return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
		}
		filter = "maip.effects." + *tenant + ".>"
	}
	if *agent != "" {
		id, err := uuid.Parse(*agent)
		if err != nil || *tenant == "" {
			return fmt.Errorf("--agent %q: must be a UUID, given with --tenant", *agent)
		}
		filter = projections.EffectSubject(*tenant, id)
	}
	nc, err := nats.Connect(*url, nats.Name("anomalyctl"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	cfg := njs.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: njs.DeliverNewPolicy}
	if *all {
		cfg.DeliverPolicy = njs.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, natseffects.DefaultStream, cfg)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", natseffects.DefaultStream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	fmt.Fprintf(stderr, "watching %s on %s (Ctrl-C to stop)\n", filter, *url)
	for n := 0; *limit == 0 || n < *limit; n++ {
		m, err := it.Next(njs.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, njs.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		fmt.Fprintf(stdout, "%s\n", m.Data())
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}
