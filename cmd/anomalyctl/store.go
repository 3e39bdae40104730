package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// storeFlags declares the flags that say where the event log is, and returns a
// function that opens it once the flags are parsed.
func storeFlags(fs *flag.FlagSet, getenv func(string) string) func(context.Context) (eventstore.Store, func(), error) {
	store := fs.String("store", envOr(getenv, "ANOMALYD_STORE", "jetstream"), "event-store backend: jetstream or esdb (env ANOMALYD_STORE)")
	natsURL := fs.String("nats-url", envOr(getenv, "ANOMALYD_NATS_URL", "nats://127.0.0.1:4222"),
		"NATS of the running anomalyd, whose JetStream holds the log (env ANOMALYD_NATS_URL)")
	offline := fs.String("offline-data-dir", "", "read the log straight from this data directory, with anomalyd stopped")
	esdbURL := fs.String("esdb-url", getenv("ANOMALYD_ESDB_URL"), "EventStoreDB connection string, with --store esdb (env ANOMALYD_ESDB_URL)")
	return func(ctx context.Context) (eventstore.Store, func(), error) {
		switch *store {
		case "esdb":
			if *esdbURL == "" {
				return nil, nil, errors.New("--store esdb needs --esdb-url")
			}
			s, err := esdb.Open(ctx, esdb.Config{URL: *esdbURL}, nil)
			if err != nil {
				return nil, nil, err
			}
			return s, s.Close, nil
		case "jetstream":
		default:
			return nil, nil, fmt.Errorf("--store %q: want jetstream or esdb", *store)
		}
		nc, closeAll, err := connectNATS(*offline, *natsURL)
		if err != nil {
			return nil, nil, err
		}
		js, err := njs.New(nc)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		s, err := jetstream.New(ctx, js, jetstream.Config{})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		return s, closeAll, nil
	}
}

// connectNATS connects to the running anomalyd's NATS, or starts the embedded
// server on a stopped one's data directory without opening a port.
func connectNATS(offline, url string) (*nats.Conn, func(), error) {
	if offline == "" {
		nc, err := nats.Connect(url, nats.Name("anomalyctl"))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w (is anomalyd running? for a stopped one use --offline-data-dir)", url, err)
		}
		return nc, nc.Close, nil
	}
	if _, err := os.Stat(offline); err != nil {
		return nil, nil, fmt.Errorf("--offline-data-dir: %w", err)
	}
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: offline, DontListen: true}, nil)
	if err != nil {
		return nil, nil, err
	}
	nc, err := jetstream.ConnectEmbedded(ns, "anomalyctl")
	if err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown() }, nil
}

// errScanDone ends a scan at the head.
var errScanDone = errors.New("head reached")

// scanLog calls fn for every event of the log, oldest first, from the first
// event to the head as it was when the scan began, and writes a progress line to
// progress every two seconds. It holds no event longer than fn does, so memory
// stays bounded whatever the log's size.
func scanLog(ctx context.Context, store eventstore.Store, progress io.Writer, fn func(eventstore.Recorded) error) error {
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if head == 0 {
		return nil
	}
	n, last := 0, time.Now()
	err = store.Subscribe(ctx, 0, func(r eventstore.Recorded) error {
		if err := fn(r); err != nil {
			return err
		}
		n++
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "%d events read, at position %d of %d\n", n, r.Position, head)
		}
		if r.Position >= head {
			return errScanDone
		}
		return nil
	})
	if errors.Is(err, errScanDone) {
		return nil
	}
	return fmt.Errorf("read the log: %w", err)
}
