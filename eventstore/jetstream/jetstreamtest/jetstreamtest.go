// Package jetstreamtest starts a real embedded NATS server with JetStream for
// tests and benchmarks: a temp directory, a free port on 127.0.0.1, stopped at
// cleanup. The client connects to it as the service does (ConnectEmbedded).
package jetstreamtest

import (
	"context"
	"testing"

	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	njs "github.com/nats-io/nats.go/jetstream"
)

// JetStream starts an embedded server in tb's temp directory and returns a
// JetStream context connected to it over loopback TCP.
func JetStream(tb testing.TB) njs.JetStream {
	tb.Helper()
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: tb.TempDir(), Host: "127.0.0.1", Port: -1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := jetstream.ConnectEmbedded(ns, tb.Name())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// Store returns the event store on a fresh embedded server.
func Store(tb testing.TB) *jetstream.Store {
	tb.Helper()
	s, err := jetstream.New(context.Background(), JetStream(tb), jetstream.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
