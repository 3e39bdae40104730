package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/eventstoretest"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/eventstore/jetstream/jetstreamtest"
)

func TestStoreInProcess(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		s := startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true})
		return openStore(t, connectInProcess(t, s))
	})
}

// TestStoreOverTCP runs the conformance suite on the connection the service
// makes to its embedded server when that listens, as it does by default.
func TestStoreOverTCP(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		s := startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), Host: "127.0.0.1", Port: -1})
		nc, err := jetstream.ConnectEmbedded(s, "test")
		if err != nil {
			t.Fatalf("ConnectEmbedded: %v", err)
		}
		t.Cleanup(nc.Close)
		if got := nc.ConnectedAddr(); got != s.Addr().String() {
			t.Fatalf("connected to %q, want the listener %s", got, s.Addr())
		}
		return openStore(t, nc)
	})
}

func TestConnectEmbeddedUsesTheListenerWhenThereIsOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  jetstream.EmbeddedConfig
		want func(s *server.Server) string // the address connected to
	}{
		{"Loopback", jetstream.EmbeddedConfig{Host: "127.0.0.1", Port: -1}, func(s *server.Server) string { return s.Addr().String() }},
		{"AllAddressesThroughLoopback", jetstream.EmbeddedConfig{Host: "0.0.0.0", Port: -1}, func(s *server.Server) string {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
		}},
		{"InProcessWithoutAListener", jetstream.EmbeddedConfig{DontListen: true}, func(*server.Server) string { return "pipe" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir = t.TempDir()
			s := startServer(t, tc.cfg)
			nc, err := jetstream.ConnectEmbedded(s, "test")
			if err != nil {
				t.Fatalf("ConnectEmbedded: %v", err)
			}
			defer nc.Close()
			if got, want := nc.ConnectedAddr(), tc.want(s); got != want {
				t.Errorf("connected to %q, want %q", got, want)
			}
			if err := nc.Flush(); err != nil { // a round trip to the server
				t.Errorf("flush: %v", err)
			}
		})
	}
}

func TestStoreKeepsEventsAndVersionsAcrossRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	stream := domain.AnomalyStream("acme", uuid.New())

	s1 := startServer(t, jetstream.EmbeddedConfig{DataDir: dir, DontListen: true, SyncAlways: true})
	nc1 := connectInProcess(t, s1)
	store := openStore(t, nc1)
	first, err := store.Append(ctx, 0, event(stream, 1))
	if err != nil {
		t.Fatalf("Append 1: %v", err)
	}
	second, err := store.Append(ctx, 1, event(stream, 2))
	if err != nil {
		t.Fatalf("Append 2: %v", err)
	}
	nc1.Close()
	s1.Shutdown()
	s1.WaitForShutdown()

	s2 := startServer(t, jetstream.EmbeddedConfig{DataDir: dir, DontListen: true, SyncAlways: true})
	store = openStore(t, connectInProcess(t, s2)) // Its version cache is empty.

	got, err := store.ReadStream(ctx, stream, 0)
	if err != nil || len(got) != 2 || got[0].ID != first.ID || got[1].ID != second.ID {
		t.Fatalf("ReadStream after restart = %v, %v; want the 2 events appended before", got, err)
	}
	for _, expected := range []uint64{0, 1, 3} {
		_, err := store.Append(ctx, expected, event(stream, expected+1))
		if !errors.Is(err, domain.ErrConcurrency) {
			t.Errorf("Append at expected %d after restart = %v, want a concurrency error", expected, err)
		}
	}
	retried, err := store.Append(ctx, 1, second.Event)
	if err != nil || retried.Position != second.Position {
		t.Errorf("retried Append after restart = %v, %v; want position %d", retried.Position, err, second.Position)
	}
	if _, err := store.Append(ctx, 2, event(stream, 3)); err != nil {
		t.Errorf("Append at the real version after restart: %v", err)
	}
}

func TestStoreFreshStoreLooksUpVersion(t *testing.T) {
	// Two stores on one stream are two processes: neither sees the other's cache.
	ctx := t.Context()
	nc := connectInProcess(t, startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true}))
	a, b := openStore(t, nc), openStore(t, nc)
	stream := domain.AnomalyStream("acme", uuid.New())

	if _, err := a.Append(ctx, 0, event(stream, 1)); err != nil {
		t.Fatalf("a: Append: %v", err)
	}
	if _, err := b.Append(ctx, 1, event(stream, 2)); err != nil {
		t.Fatalf("b: Append: %v", err)
	}
	// a's cache says version 1; the server says 2.
	if _, err := a.Append(ctx, 1, event(stream, 2)); !errors.Is(err, domain.ErrConcurrency) {
		t.Fatalf("a: Append at stale cached version = %v, want a concurrency error", err)
	}
	if _, err := a.Append(ctx, 2, event(stream, 3)); err != nil {
		t.Fatalf("a: Append after conflict: %v", err)
	}
}

func TestSubscribeDeletesItsConsumer(t *testing.T) {
	nc := connectInProcess(t, startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true}))
	store := openStore(t, nc)
	ctx := t.Context()
	if _, err := store.Append(ctx, 0, event(domain.AnomalyStream("acme", uuid.New()), 1)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	stop := errors.New("stop")
	if err := store.Subscribe(ctx, 0, func(eventstore.Recorded) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Subscribe = %v, want the handler's error", err)
	}

	js, err := njs.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	stream, err := js.Stream(ctx, jetstream.DefaultStream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if n := info.State.Consumers; n != 0 {
		t.Fatalf("%d consumers left after Subscribe returned, want 0", n)
	}
}

func TestStoreRejectsUnsafeSubjectTokens(t *testing.T) {
	ctx := t.Context()
	nc := connectInProcess(t, startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true}))
	store := openStore(t, nc)
	for _, id := range []domain.StreamID{
		{Tenant: "acme.other", Category: domain.CategoryAnomaly, ID: "x"},
		{Tenant: "acme", Category: "*", ID: "x"},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: ">"},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: ""},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: "a b"},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: "é"},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: strings.Repeat("x", 129)},
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: "x\n"},
	} {
		t.Run(id.String(), func(t *testing.T) {
			if _, err := store.ReadStream(ctx, id, 0); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("ReadStream = %v, want %s", err, domain.EINVALID)
			}
			if _, err := store.Append(ctx, 0, event(id, 1)); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("Append = %v, want %s", err, domain.EINVALID)
			}
		})
	}
}

// The characters next to the ranges of [A-Za-z0-9_-] are refused as a token,
// and every character of the set is taken, up to 128 of them.
func TestStoreSubjectTokensAreExactlyTheSafeSet(t *testing.T) {
	ctx := t.Context()
	nc := connectInProcess(t, startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true}))
	store := openStore(t, nc)
	for _, c := range "/:@[`{^.,~" {
		id := domain.StreamID{Tenant: "acme", Category: domain.CategoryAnomaly, ID: "a" + string(c) + "b"}
		if _, err := store.ReadStream(ctx, id, 0); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ReadStream(%q) = %v, want %s", id.ID, err, domain.EINVALID)
		}
	}
	safe := "azAZ09_-" + strings.Repeat("m", 120)
	for _, id := range []domain.StreamID{
		{Tenant: "acme", Category: domain.CategoryAnomaly, ID: safe},
		{Tenant: safe, Category: safe, ID: "x"},
	} {
		if _, err := store.Append(ctx, 0, event(id, 1)); err != nil {
			t.Errorf("Append to %q = %v", id.String(), err)
		}
	}
}

func TestNewRejectsUnsafeStreamNamesAndPrefixes(t *testing.T) {
	nc := connectInProcess(t, startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true}))
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []jetstream.Config{
		{Stream: "EVENTS.ALL"},
		{Stream: "EVENTS*"},
		{Stream: strings.Repeat("S", 256)},
		{SubjectPrefix: "anomalyd..events"},
		{SubjectPrefix: "anomalyd.>"},
		{SubjectPrefix: "anomalyd." + strings.Repeat("p", 129)},
	} {
		if _, err := jetstream.New(t.Context(), js, cfg); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("New(%+v) = %v, want %s", cfg, err, domain.EINVALID)
		}
	}
	if _, err := jetstream.New(t.Context(), js, jetstream.Config{Stream: strings.Repeat("S", 255), SubjectPrefix: "a-b_C." + strings.Repeat("p", 128)}); err != nil {
		t.Errorf("New with the longest names = %v", err)
	}
}

func TestStartEmbeddedFailsWithAClearError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	taken := startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir()}).Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name string
		cfg  jetstream.EmbeddedConfig
	}{
		{"NoDataDir", jetstream.EmbeddedConfig{DontListen: true}},
		{"DataDirIsAFile", jetstream.EmbeddedConfig{DataDir: file, DontListen: true}},
		{"PortTaken", jetstream.EmbeddedConfig{DataDir: t.TempDir(), Port: taken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := jetstream.StartEmbedded(tc.cfg, nil); err == nil {
				s.Shutdown()
				t.Fatal("StartEmbedded succeeded")
			}
		})
	}
}

func startServer(t *testing.T, cfg jetstream.EmbeddedConfig) *server.Server {
	t.Helper()
	s, err := jetstream.StartEmbedded(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func connectInProcess(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := jetstream.ConnectEmbedded(s, "test")
	if err != nil {
		t.Fatalf("ConnectEmbedded: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func openStore(tb testing.TB, nc *nats.Conn) *jetstream.Store {
	tb.Helper()
	js, err := njs.New(nc)
	if err != nil {
		tb.Fatalf("jetstream.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	store, err := jetstream.New(ctx, js, jetstream.Config{})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return store
}

func event(stream domain.StreamID, version uint64) domain.Event {
	return domain.Event{
		ID: uuid.New(), Type: "test.happened", Stream: stream, Version: version, TenantID: stream.Tenant,
		OccurredAt: time.Now().UTC(), Actor: domain.Actor{ID: "tester", Kind: domain.ActorSystem},
		Data: json.RawMessage(`{}`),
	}
}

// A store that has not seen a stream (another instance, or a restart) appends
// a new stream's first event without asking the server first: the server
// refuses the publish when the stream exists, and the store then tells a
// retry of the stored event from a conflicting one.
func TestStoreWithoutCacheFirstAppendToAnExistingStream(t *testing.T) {
	ctx := t.Context()
	s := startServer(t, jetstream.EmbeddedConfig{DataDir: t.TempDir(), DontListen: true})
	nc := connectInProcess(t, s)
	writer := openStore(t, nc)
	stream := domain.AnomalyStream("acme", uuid.New())
	first := event(stream, 1)
	stored, err := writer.Append(ctx, 0, first)
	if err != nil {
		t.Fatal(err)
	}

	other := openStore(t, nc)
	_, err = other.Append(ctx, 0, event(stream, 1))
	var ce *domain.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("another first event of an existing stream: err = %v, want a concurrency error at version 1", err)
	}
	retried, err := openStore(t, nc).Append(ctx, 0, first)
	if err != nil || retried.Position != stored.Position {
		t.Fatalf("retry of the stored first event = %d, %v; want position %d", retried.Position, err, stored.Position)
	}
	if _, err := other.Append(ctx, 1, event(stream, 2)); err != nil {
		t.Fatalf("append after the conflict taught the store the head: %v", err)
	}
}

// Subscribe reads the stream without a consumer filter. Events stored under
// another subject prefix (the stream's prefix was changed by an operator) are
// not the store's: Subscribe skips them, as ReadStream cannot address them.
func TestSubscribeSkipsEventsOutsideItsPrefix(t *testing.T) {
	ctx := t.Context()
	js := jetstreamtest.JetStream(t)
	open := func(prefix string) *jetstream.Store {
		s, err := jetstream.New(ctx, js, jetstream.Config{SubjectPrefix: prefix})
		if err != nil {
			t.Fatalf("New(%s): %v", prefix, err)
		}
		return s
	}
	old := open("old.events")
	if _, err := old.Append(ctx, 0, event(domain.AnomalyStream("acme", uuid.New()), 1)); err != nil {
		t.Fatalf("Append under the old prefix: %v", err)
	}
	// A prefix that shares the first characters, so that a bare prefix
	// comparison would take it for the store's.
	if _, err := open("new.eventsx").Append(ctx, 0, event(domain.AnomalyStream("acme", uuid.New()), 1)); err != nil {
		t.Fatalf("Append under a look-alike prefix: %v", err)
	}
	store := open("new.events")
	want := event(domain.AnomalyStream("acme", uuid.New()), 1)
	rec, err := store.Append(ctx, 0, want)
	if err != nil {
		t.Fatalf("Append under the new prefix: %v", err)
	}

	var got []eventstore.Recorded
	done := errors.New("done")
	err = store.Subscribe(ctx, 0, func(r eventstore.Recorded) error {
		got = append(got, r)
		if r.Position >= rec.Position {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("Subscribe = %v", err)
	}
	if len(got) != 1 || got[0].ID != want.ID || got[0].Position != rec.Position {
		t.Fatalf("Subscribe delivered %d events (%+v), want only the one under the store's prefix at %d", len(got), got, rec.Position)
	}
}

// A store whose head cache holds one stream evicts the others' heads: an
// append on an evicted stream looks its head up and behaves as with a cache
// large enough, a stale expected version included.
func TestStoreWithASmallHeadCache(t *testing.T) {
	ctx := t.Context()
	js := jetstreamtest.JetStream(t)
	store, err := jetstream.New(ctx, js, jetstream.Config{HeadCache: 1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	streams := []domain.StreamID{domain.AnomalyStream("acme", uuid.New()), domain.AnomalyStream("acme", uuid.New()), domain.AnomalyStream("globex", uuid.New())}
	for v := uint64(1); v <= 3; v++ {
		for _, s := range streams {
			if _, err := store.Append(ctx, v-1, event(s, v)); err != nil {
				t.Fatalf("Append %s version %d: %v", s, v, err)
			}
		}
	}
	for _, s := range streams {
		if _, err := store.Append(ctx, 2, event(s, 3)); !errors.Is(err, domain.ErrConcurrency) {
			t.Fatalf("Append %s at stale version 2 = %v, want a concurrency error", s, err)
		}
		recs, err := store.ReadStream(ctx, s, 0)
		if err != nil || len(recs) != 3 {
			t.Fatalf("ReadStream %s = %d events, %v; want 3", s, len(recs), err)
		}
	}
}
