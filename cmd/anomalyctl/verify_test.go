package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/esdb/esdbtest"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

func principal(tenant string) domain.Principal {
	return domain.Principal{Actor: domain.Actor{ID: "key_test", Kind: domain.ActorAPIKey}, Tenant: tenant, Scopes: domain.AllScopes}
}

// history writes a small realistic log through the command service: anomalies
// of two tenants, reported and resolved. It returns acme's resolved anomaly.
func history(t *testing.T, store eventstore.Store) uuid.UUID {
	t.Helper()
	svc := app.NewService(store)
	ctx := context.Background()
	var last uuid.UUID
	for _, tenant := range []string{"acme", "globex", "acme"} {
		res, err := svc.Report(ctx, principal(tenant), domain.ReportAnomaly{AgentID: uuid.New(), AnomalyType: "rate_spike", Severity: domain.SeverityHigh})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Resolve(ctx, principal(tenant), res.Anomaly.ID, domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}); err != nil {
			t.Fatal(err)
		}
		if tenant == "acme" {
			last = res.Anomaly.ID
		}
	}
	return last
}

func verifyRun(t *testing.T, args ...string) result {
	t.Helper()
	return runCtl(t, env(nil), append([]string{"verify"}, args...)...)
}

func TestVerifyFindsAnEventForgedIntoJetStream(t *testing.T) {
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: t.TempDir(), Host: "127.0.0.1", Port: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := njs.New(nc)
	store, err := jetstream.New(context.Background(), js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	id := history(t, store)
	url := "--nats-url=" + ns.ClientURL()

	if r := verifyRun(t, url); r.code != 0 || !strings.Contains(r.stdout, "ok: 6 events in 3 streams") {
		t.Fatalf("clean log: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Behind the service's back: a third event on acme's anomaly, a dismissal
	// that never happened, appended with the right expected sequence and a
	// self-consistent hash, but not chained to the real history.
	recs, err := store.ReadStream(context.Background(), domain.AnomalyStream("acme", id), 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := recs[1].Event
	forged.ID, forged.Type, forged.Version = uuid.New(), domain.EventAnomalyDismissed, 3
	forged.Data = []byte(`{"anomaly_id":"` + id.String() + `","reason":"nothing to see"}`)
	forged.PrevHash = strings.Repeat("0", 64)
	forged.Hash = domain.HashEvent(forged)
	body, _ := eventstore.MarshalEvent(forged)
	msg := nats.NewMsg("anomalyd.events.acme.anomaly." + id.String())
	msg.Data = body
	msg.Header.Set("Anomalyd-Version", "3")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}

	r := verifyRun(t, url)
	if r.code == 0 || !strings.Contains(r.stdout, "acme.anomaly."+id.String()) || !strings.Contains(r.stdout, "version 3") {
		t.Fatalf("forged event: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := verifyRun(t, url, "--tenant", "globex"); r.code != 0 {
		t.Fatalf("another tenant's chains are intact: exit %d\n%s", r.code, r.stdout)
	}
	if r := verifyRun(t, url, "--tenant", "acme", "--anomaly", id.String()); r.code == 0 || !strings.Contains(r.stdout, "1 of 1 streams") {
		t.Fatalf("one anomaly: exit %d\n%s", r.code, r.stdout)
	}
	// The service itself refuses to decide on the tampered history.
	_, err = app.NewService(store).Resolve(context.Background(), principal("acme"), id, domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated})
	if domain.ErrorCode(err) != domain.EINTERNAL || !strings.Contains(err.Error(), "tamper") {
		t.Fatalf("command on a tampered anomaly: %v, want INTERNAL_ERROR naming the tampering", err)
	}
}

func TestVerifyFindsAnEventEditedInEventStoreDB(t *testing.T) {
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := esdb.Open(ctx, esdb.Config{URL: srv.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	id := history(t, store)
	args := []string{"--store", "esdb", "--esdb-url", srv.URL()}
	if r := verifyRun(t, args...); r.code != 0 {
		t.Fatalf("clean log: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Rewrite the resolution in place, as someone with the database's files would.
	err = srv.Data().Tamper("anomalyd-acme.anomaly."+id.String(), 1, func(b []byte) []byte {
		return bytes.Replace(b, []byte("false_positive"), []byte("agent_revoked"), 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	r := verifyRun(t, args...)
	if r.code == 0 || !strings.Contains(r.stdout, "version 2") || !strings.Contains(r.stdout, "altered") {
		t.Fatalf("edited event: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	dir := t.TempDir()
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: dir, DontListen: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if r := verifyRun(t, "--offline-data-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "ok: 0 events") {
		t.Fatalf("empty log: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := verifyRun(t, "--nats-url", "nats://127.0.0.1:1"); r.code == 0 || !strings.Contains(r.stderr, "offline-data-dir") {
		t.Fatalf("unreachable NATS: exit %d, stderr %q", r.code, r.stderr)
	}
}
