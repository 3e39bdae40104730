package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// errBroken makes verify exit non-zero once it has reported the broken links.
var errBroken = errors.New("the log has broken hash chains")

// verify walks the log from its first event to its head, recomputes the hash
// chain of every stream (or of one tenant's, or of one anomaly's), and reports
// the first broken link of each broken chain.
func verify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	open := storeFlags(fs, getenv)
	tenant := fs.String("tenant", "", "only this tenant's streams")
	anomaly := fs.String("anomaly", "", "only this anomaly's stream (needs --tenant)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	match := func(domain.Event) bool { return true }
	switch {
	case *anomaly != "":
		id, err := uuid.Parse(*anomaly)
		if err != nil || !domain.ValidTenant(*tenant) {
			return fmt.Errorf("--anomaly %q: must be a UUID, given with --tenant", *anomaly)
		}
		stream := domain.AnomalyStream(*tenant, id)
		match = func(e domain.Event) bool { return e.Stream == stream }
	case *tenant != "":
		if !domain.ValidTenant(*tenant) {
			return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
		}
		match = func(e domain.Event) bool { return e.TenantID == *tenant }
	}
	store, closeStore, err := open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()

	v := domain.NewChainVerifier()
	var events, broken int
	streams := map[domain.StreamID]bool{}
	err = scanLog(ctx, store, stderr, func(r eventstore.Recorded) error {
		if match(r.Event) {
			events++
			streams[r.Stream] = true
			if err := v.Check(r.Event); err != nil {
				broken++
				fmt.Fprintf(stdout, "BROKEN %s (position %d)\n", err, r.Position)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if broken > 0 {
		fmt.Fprintf(stdout, "%d of %d streams have a broken hash chain (%d events checked)\n", broken, len(streams), events)
		return errBroken
	}
	fmt.Fprintf(stdout, "ok: %d events in %d streams, every hash chain intact\n", events, len(streams))
	return nil
}
