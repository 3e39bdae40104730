package esdb_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/esdb/esdbtest"
	"github.com/anomalyd/anomalyd/eventstore/eventstoretest"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

func startServer(t *testing.T) *esdbtest.Server {
	t.Helper()
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// fastURL makes the client give up quickly when the server is gone, so that the
// rebuild path is reached in a test in well under a second.
func fastURL(srv *esdbtest.Server) string {
	return srv.URL() + "&maxDiscoverAttempts=2&discoveryInterval=50"
}

func open(t *testing.T, url string, logger *slog.Logger) *esdb.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := esdb.Open(ctx, esdb.Config{URL: url, StartupTimeout: 15 * time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// The conformance suite against the protocol test server, the official client
// speaking gRPC to it on loopback.
func TestStoreOnProtocolTestServer(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, startServer(t).URL(), nil)
	})
}

// The same suite against a real EventStoreDB or KurrentDB, when one is given:
// ANOMALYD_TEST_ESDB_URL=esdb://localhost:2113?tls=false (docker compose up eventstore).
func TestStoreOnRealServer(t *testing.T) {
	url := os.Getenv("ANOMALYD_TEST_ESDB_URL")
	if url == "" {
		t.Skip("ANOMALYD_TEST_ESDB_URL is not set; see the README to run EventStoreDB with docker compose")
	}
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		// Every test gets its own stream prefix: a real server keeps its log.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, esdb.Config{URL: url, StreamPrefix: "anomalyd-test-" + uuid.NewString()[:8] + "-"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	})
}

func event(tenant string, id uuid.UUID, version uint64) domain.Event {
	return domain.Event{
		ID: uuid.New(), Type: "test.happened", Stream: domain.AnomalyStream(tenant, id), Version: version,
		TenantID: tenant, OccurredAt: time.Now().UTC(), Actor: domain.Actor{ID: "tester", Kind: domain.ActorSystem},
		Data: []byte(`{}`),
	}
}

// appendN appends n one-event streams and returns the position of the last.
func appendN(t *testing.T, s eventstore.Store, n int) uint64 {
	t.Helper()
	var last uint64
	for range n {
		r, err := s.Append(context.Background(), 0, event("acme", uuid.New(), 1))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Position
	}
	return last
}

// The client closes itself for good once its discovery attempts are spent; the
// store must build a new one when the server is back.
func TestClientRebuiltAfterGivingUp(t *testing.T) {
	srv := startServer(t)
	addr, data := srv.Addr(), srv.Data()
	s := open(t, fastURL(srv), nil)
	appendN(t, s, 1)

	srv.Stop()
	ctx := context.Background()
	for range 3 { // fail until the client has spent its discovery attempts
		if _, err := s.Head(ctx); err == nil {
			t.Fatal("head succeeded with the server down")
		}
	}
	again, err := esdbtest.StartAt(addr, data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)
	var head uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		if head, err = s.Head(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never recovered after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if head == 0 {
		t.Fatal("head is 0 after the restart: the data was lost")
	}
	appendN(t, s, 1)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// Open waits for a server that comes up after it, and says so in the log.
func TestOpenWaitsForTheServer(t *testing.T) {
	srv := startServer(t)
	addr, url := srv.Addr(), srv.URL()
	srv.Stop()

	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	opened := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, esdb.Config{URL: url, StartupTimeout: 15 * time.Second}, logger)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	for !strings.Contains(logs.String(), "waiting for the server") {
		select {
		case err := <-opened:
			t.Fatalf("Open returned before the server was up: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	late, err := esdbtest.StartAt(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(late.Stop)
	if err := <-opened; err != nil {
		t.Fatalf("Open after the server came up: %v", err)
	}
}

func TestOpenGivesUpWithinItsTimeout(t *testing.T) {
	srv := startServer(t)
	url := srv.URL()
	srv.Stop()
	_, err := esdb.Open(context.Background(), esdb.Config{URL: url, StartupTimeout: 500 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("err = %v, want a clear not-reachable error", err)
	}
}

// TLS is on unless the URL says tls=false; against an insecure server the error
// tells the user what to add.
func TestTLSMismatchNamesTheFix(t *testing.T) {
	srv := startServer(t)
	url := "esdb://" + srv.Addr() + "?maxDiscoverAttempts=1"
	_, err := esdb.Open(context.Background(), esdb.Config{URL: url, StartupTimeout: 500 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "tls=false") {
		t.Fatalf("err = %v, want it to name tls=false", err)
	}
}

func TestMalformedURLRefused(t *testing.T) {
	for _, url := range []string{"http://localhost:2113", "localhost:2113", "esdb://"} {
		if _, err := esdb.Open(context.Background(), esdb.Config{URL: url, StartupTimeout: time.Second}, nil); err == nil {
			t.Errorf("%q accepted", url)
		}
	}
}

type recorder struct {
	mu  sync.Mutex
	pos []uint64
}

func (r *recorder) Apply(_ context.Context, rec eventstore.Recorded) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pos = append(r.pos, rec.Position)
	return nil
}

// Killing the server mid-subscription and starting it again: the projection
// resumes from its checkpoint, with no event lost or applied twice.
func TestProjectionResumesAfterServerRestart(t *testing.T) {
	srv := startServer(t)
	addr, data := srv.Addr(), srv.Data()
	s := open(t, fastURL(srv), nil)
	before := appendN(t, s, 5)

	rec := &recorder{}
	runner := projections.NewRunner("test", s, rec, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	wait := func(pos uint64) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if err := runner.WaitFor(wctx, pos); err != nil {
			t.Fatalf("projection did not reach %d: %v", pos, err)
		}
	}
	wait(before)

	srv.Stop() // the subscription drops with the server
	again, err := esdbtest.StartAt(addr, data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)
	var after uint64
	deadline := time.Now().Add(15 * time.Second)
	for after == 0 {
		r, err := s.Append(context.Background(), 0, event("acme", uuid.New(), 1))
		if err == nil {
			after = r.Position
		} else if time.Now().After(deadline) {
			t.Fatalf("append after restart: %v", err)
		}
	}
	after = max(after, appendN(t, s, 4))
	wait(after)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.pos) != 10 {
		t.Fatalf("applied %d events, want 10 each once: %v", len(rec.pos), rec.pos)
	}
	for i := 1; i < len(rec.pos); i++ {
		if rec.pos[i] <= rec.pos[i-1] {
			t.Fatalf("positions repeated or out of order: %v", rec.pos)
		}
	}
}
