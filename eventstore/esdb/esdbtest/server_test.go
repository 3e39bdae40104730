package esdbtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/eventstore/esdb/esdbtest"
)

// hangGuard bounds every call that could block; it is never expected to
// fire.
const hangGuard = 10 * time.Second

func startServer(t *testing.T) *esdbtest.Server {
	t.Helper()
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func newClient(t *testing.T, url string) *esdb.Client {
	t.Helper()
	conf, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatalf("ParseConnectionString(%q): %v", url, err)
	}
	conf.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(conf)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

func event(eventType, data string) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.New(),
		EventType:   eventType,
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(data),
		Metadata:    []byte(`{"by":"test"}`),
	}
}

func mustAppend(t *testing.T, c *esdb.Client, stream string, rev esdb.ExpectedRevision, events ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	res, err := c.AppendToStream(testContext(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: rev}, events...)
	if err != nil {
		t.Fatalf("AppendToStream(%s, %#v): %v", stream, rev, err)
	}
	return res
}

func wantCode(t *testing.T, err error, code esdb.ErrorCode, what string) {
	t.Helper()
	var esErr *esdb.Error
	if !errors.As(err, &esErr) {
		t.Fatalf("%s: error %v (%T) is not an *esdb.Error", what, err, err)
	}
	if esErr.Code() != code {
		t.Fatalf("%s: error code %d (%v), want %d", what, esErr.Code(), err, code)
	}
}

// collect reads a ReadStream to its end.
func collect(t *testing.T, rs *esdb.ReadStream, err error) ([]*esdb.ResolvedEvent, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func readStream(t *testing.T, c *esdb.Client, stream string, opts esdb.ReadStreamOptions, count uint64) []*esdb.ResolvedEvent {
	t.Helper()
	rs, err := c.ReadStream(testContext(t), stream, opts, count)
	evs, err := collect(t, rs, err)
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", stream, err)
	}
	return evs
}

func readAll(t *testing.T, c *esdb.Client, opts esdb.ReadAllOptions, count uint64) []*esdb.ResolvedEvent {
	t.Helper()
	rs, err := c.ReadAll(testContext(t), opts, count)
	evs, err := collect(t, rs, err)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return evs
}

// next returns the next event of a subscription, skipping checkpoints and
// caught-up notices.
func next(t *testing.T, sub *esdb.Subscription) *esdb.RecordedEvent {
	t.Helper()
	for {
		e := sub.Recv()
		if e.SubscriptionDropped != nil {
			t.Fatalf("subscription dropped: %v", e.SubscriptionDropped.Error)
		}
		if e.EventAppeared != nil {
			return e.EventAppeared.OriginalEvent()
		}
	}
}

func wantIDs(t *testing.T, what string, got []*esdb.RecordedEvent, want ...esdb.EventData) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].EventID != want[i].EventID {
			t.Fatalf("%s: event %d is %s (%s), want %s", what, i, got[i].EventID, got[i].EventType, want[i].EventID)
		}
	}
}

func originals(evs []*esdb.ResolvedEvent) []*esdb.RecordedEvent {
	out := make([]*esdb.RecordedEvent, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent()
	}
	return out
}

func revisions(evs []*esdb.ResolvedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent().EventNumber
	}
	return out
}

func TestAppendExpectedRevisions(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())

	r1 := mustAppend(t, c, "acc-1", esdb.NoStream{}, event("Opened", `{}`), event("Deposited", `{"n":1}`))
	if r1.NextExpectedVersion != 1 || r1.CommitPosition == 0 || r1.CommitPosition != r1.PreparePosition {
		t.Fatalf("first append: %+v", r1)
	}
	r2 := mustAppend(t, c, "acc-1", esdb.StreamExists{}, event("Deposited", `{"n":2}`))
	r3 := mustAppend(t, c, "acc-1", esdb.Revision(2), event("Deposited", `{"n":3}`))
	r4 := mustAppend(t, c, "acc-1", esdb.Any{}, event("Deposited", `{"n":4}`))
	r5 := mustAppend(t, c, "acc-2", esdb.Any{}, event("Opened", `{}`))
	prev := r1.CommitPosition
	for i, r := range []*esdb.WriteResult{r2, r3, r4, r5} {
		if r.CommitPosition <= prev || r.CommitPosition != r.PreparePosition {
			t.Fatalf("append %d: position %+v not after %d", i+2, r, prev)
		}
		prev = r.CommitPosition
	}
	if r2.NextExpectedVersion != 2 || r3.NextExpectedVersion != 3 || r4.NextExpectedVersion != 4 || r5.NextExpectedVersion != 0 {
		t.Fatalf("revisions: %d %d %d %d", r2.NextExpectedVersion, r3.NextExpectedVersion, r4.NextExpectedVersion, r5.NextExpectedVersion)
	}

	for _, tc := range []struct {
		name   string
		stream string
		rev    esdb.ExpectedRevision
		msg    string // as the client words it from the server's answer
	}{
		{"no stream on existing", "acc-1", esdb.NoStream{}, "expecting 'no_stream' but got '4'"},
		{"revision behind", "acc-1", esdb.Revision(1), "expecting '1' but got '4'"},
		{"revision ahead", "acc-1", esdb.Revision(9), "expecting '9' but got '4'"},
		{"stream exists on missing", "missing", esdb.StreamExists{}, "expecting 'stream_exists' but got 'no_stream'"},
		{"revision on missing", "missing", esdb.Revision(0), "expecting '0' but got 'no_stream'"},
	} {
		_, err := c.AppendToStream(testContext(t), tc.stream, esdb.AppendToStreamOptions{ExpectedRevision: tc.rev}, event("X", `{}`))
		wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion, tc.name)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("%s: error %q does not say %q", tc.name, err, tc.msg)
		}
	}
	if n := len(readStream(t, c, "acc-1", esdb.ReadStreamOptions{}, 100)); n != 5 {
		t.Fatalf("acc-1 has %d events after the failed appends, want 5", n)
	}
	rs, err := c.ReadStream(testContext(t), "missing", esdb.ReadStreamOptions{}, 10)
	if _, err := collect(t, rs, err); err == nil {
		t.Fatal("failed appends created stream 'missing'")
	}
}

func TestIdempotentAppend(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	a, b, x := event("A", `{}`), event("B", `{}`), event("C", `{}`)

	first := mustAppend(t, c, "idem", esdb.NoStream{}, a, b)
	if again := mustAppend(t, c, "idem", esdb.NoStream{}, a, b); *again != *first {
		t.Fatalf("re-append with no_stream: %+v, want %+v", again, first)
	}
	third := mustAppend(t, c, "idem", esdb.Revision(1), x)
	if again := mustAppend(t, c, "idem", esdb.Revision(1), x); *again != *third {
		t.Fatalf("re-append at revision 1: %+v, want %+v", again, third)
	}
	if again := mustAppend(t, c, "idem", esdb.Any{}, x); *again != *third {
		t.Fatalf("re-append with any: %+v, want %+v", again, third)
	}
	// b is at revision 1, so expecting revision 0 and sending b is a retry.
	if again := mustAppend(t, c, "idem", esdb.Revision(0), b); again.NextExpectedVersion != 1 || again.CommitPosition >= third.CommitPosition {
		t.Fatalf("re-append of b at revision 0: %+v", again)
	}
	_, err := c.AppendToStream(testContext(t), "idem", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, event("B", `{}`))
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion, "other id at revision 1")
	_, err = c.AppendToStream(testContext(t), "idem", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, a, b, x, event("D", `{}`))
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion, "longer batch than what is stored")

	wantIDs(t, "stream", originals(readStream(t, c, "idem", esdb.ReadStreamOptions{}, 100)), a, b, x)
}

func TestReadStream(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	before := time.Now()
	var evs []esdb.EventData
	for i := range 5 {
		evs = append(evs, event(fmt.Sprintf("E%d", i), fmt.Sprintf(`{"i":%d}`, i)))
	}
	evs[4].ContentType = esdb.ContentTypeBinary
	mustAppend(t, c, "rs", esdb.NoStream{}, evs...)
	mustAppend(t, c, "other", esdb.NoStream{}, event("O", `{}`))

	all := readStream(t, c, "rs", esdb.ReadStreamOptions{}, 100)
	wantIDs(t, "forwards from start", originals(all), evs...)
	for i, e := range originals(all) {
		if e.StreamID != "rs" || e.EventNumber != uint64(i) || e.EventType != evs[i].EventType ||
			string(e.Data) != string(evs[i].Data) || string(e.UserMetadata) != `{"by":"test"}` {
			t.Fatalf("event %d: %+v", i, e)
		}
		if e.Position.Commit == 0 || e.Position.Commit != e.Position.Prepare ||
			(i > 0 && e.Position.Commit <= originals(all)[i-1].Position.Commit) {
			t.Fatalf("event %d: position %+v", i, e.Position)
		}
		if e.CreatedDate.Before(before.Add(-time.Minute)) || e.CreatedDate.After(time.Now().Add(time.Minute)) {
			t.Fatalf("event %d: created %v", i, e.CreatedDate)
		}
	}
	if ct := all[0].Event.ContentType; ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	if ct := all[4].Event.ContentType; ct != "application/octet-stream" {
		t.Fatalf("content type %q", ct)
	}

	for _, tc := range []struct {
		name  string
		opts  esdb.ReadStreamOptions
		count uint64
		want  []uint64
	}{
		{"forwards from revision", esdb.ReadStreamOptions{From: esdb.Revision(2)}, 2, []uint64{2, 3}},
		{"forwards past the end", esdb.ReadStreamOptions{From: esdb.Revision(7)}, 2, []uint64{}},
		{"forwards from end", esdb.ReadStreamOptions{From: esdb.End{}}, 2, []uint64{}},
		{"backwards from end", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 2, []uint64{4, 3}},
		{"backwards from revision", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(1)}, 10, []uint64{1, 0}},
	} {
		got := revisions(readStream(t, c, "rs", tc.opts, tc.count))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("%s: revisions %v, want %v", tc.name, got, tc.want)
		}
	}

	rs, err := c.ReadStream(testContext(t), "nope", esdb.ReadStreamOptions{}, 10)
	_, err = collect(t, rs, err)
	wantCode(t, err, esdb.ErrorCodeResourceNotFound, "missing stream")
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	e1, e2, e3 := event("A", `{}`), event("B", `{}`), event("A", `{}`)
	mustAppend(t, c, "a-1", esdb.NoStream{}, e1)
	mustAppend(t, c, "b-1", esdb.NoStream{}, e2)
	mustAppend(t, c, "a-1", esdb.Revision(0), e3)

	all := originals(readAll(t, c, esdb.ReadAllOptions{}, 100))
	wantIDs(t, "forwards from start", all, e1, e2, e3)
	if all[0].StreamID != "a-1" || all[1].StreamID != "b-1" || all[2].EventNumber != 1 {
		t.Fatalf("events %+v %+v %+v", all[0], all[1], all[2])
	}
	wantIDs(t, "forwards from a position (inclusive)",
		originals(readAll(t, c, esdb.ReadAllOptions{From: all[1].Position}, 100)), e2, e3)
	wantIDs(t, "forwards with a count", originals(readAll(t, c, esdb.ReadAllOptions{}, 2)), e1, e2)
	wantIDs(t, "forwards from end", originals(readAll(t, c, esdb.ReadAllOptions{From: esdb.End{}}, 100)))
	wantIDs(t, "backwards from end",
		originals(readAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)), e3)
	wantIDs(t, "backwards from a position (exclusive)",
		originals(readAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: all[2].Position}, 100)), e2, e1)
}

func TestSubscribeToAllWithFilter(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	x, y, z := event("Placed", `{}`), event("Other", `{}`), event("Placed", `{}`)
	rx := mustAppend(t, c, "order-1", esdb.NoStream{}, x)
	mustAppend(t, c, "other-1", esdb.NoStream{}, y)
	mustAppend(t, c, "order-2", esdb.NoStream{}, z)

	orders := &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"order-"}}
	fromStart, err := c.SubscribeToAll(testContext(t), esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: orders})
	if err != nil {
		t.Fatalf("SubscribeToAll from start: %v", err)
	}
	defer fromStart.Close()
	if fromStart.Id() == "" {
		t.Fatal("no subscription id")
	}
	fromPos, err := c.SubscribeToAll(testContext(t), esdb.SubscribeToAllOptions{
		From:   esdb.Position{Commit: rx.CommitPosition, Prepare: rx.PreparePosition},
		Filter: orders,
	})
	if err != nil {
		t.Fatalf("SubscribeToAll from a position: %v", err)
	}
	defer fromPos.Close()

	wantIDs(t, "existing from start", []*esdb.RecordedEvent{next(t, fromStart), next(t, fromStart)}, x, z)
	wantIDs(t, "existing after position", []*esdb.RecordedEvent{next(t, fromPos)}, z)

	w, v := event("Placed", `{}`), event("Other", `{}`)
	mustAppend(t, c, "other-2", esdb.NoStream{}, v)
	mustAppend(t, c, "order-3", esdb.NoStream{}, w)
	wantIDs(t, "live from start", []*esdb.RecordedEvent{next(t, fromStart)}, w)
	wantIDs(t, "live after position", []*esdb.RecordedEvent{next(t, fromPos)}, w)
}

func TestSubscribeToAllEventTypeFilterAndCheckpoints(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	a, sys, b := event("Created", `{}`), event("$system", `{}`), event("Updated", `{}`)
	mustAppend(t, c, "s-1", esdb.NoStream{}, a, sys, b)

	sub, err := c.SubscribeToAll(testContext(t), esdb.SubscribeToAllOptions{
		From:               esdb.Start{},
		Filter:             esdb.ExcludeSystemEventsFilter(),
		MaxSearchWindow:    1,
		CheckpointInterval: 1,
	})
	if err != nil {
		t.Fatalf("SubscribeToAll: %v", err)
	}
	defer sub.Close()
	var got []*esdb.RecordedEvent
	checkpoints := 0
	for len(got) < 2 || checkpoints < 3 {
		e := sub.Recv()
		switch {
		case e.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", e.SubscriptionDropped.Error)
		case e.EventAppeared != nil:
			got = append(got, e.EventAppeared.OriginalEvent())
		case e.CheckPointReached != nil:
			checkpoints++
		}
	}
	wantIDs(t, "without system events", got, a, b)
}

func TestSubscribeToStream(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	var evs []esdb.EventData
	for i := range 3 {
		evs = append(evs, event(fmt.Sprintf("E%d", i), `{}`))
	}
	mustAppend(t, c, "sub-s", esdb.NoStream{}, evs...)
	mustAppend(t, c, "sub-other", esdb.NoStream{}, event("O", `{}`))

	subscribe := func(stream string, from esdb.StreamPosition) *esdb.Subscription {
		sub, err := c.SubscribeToStream(testContext(t), stream, esdb.SubscribeToStreamOptions{From: from})
		if err != nil {
			t.Fatalf("SubscribeToStream(%s, %v): %v", stream, from, err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		return sub
	}
	fromStart := subscribe("sub-s", esdb.Start{})
	fromRev := subscribe("sub-s", esdb.Revision(1))
	fromEnd := subscribe("sub-s", esdb.End{})
	notYet := subscribe("sub-new", esdb.Start{})

	var got []*esdb.RecordedEvent
	for {
		e := fromStart.Recv()
		if e.SubscriptionDropped != nil {
			t.Fatalf("dropped: %v", e.SubscriptionDropped.Error)
		}
		if e.CaughtUp != nil {
			break
		}
		if e.EventAppeared != nil {
			got = append(got, e.EventAppeared.OriginalEvent())
		}
	}
	wantIDs(t, "from start, before caught up", got, evs...)
	wantIDs(t, "after revision 1", []*esdb.RecordedEvent{next(t, fromRev)}, evs[2])

	live := event("Live", `{}`)
	mustAppend(t, c, "sub-other", esdb.Any{}, event("O", `{}`))
	mustAppend(t, c, "sub-s", esdb.Revision(2), live)
	fresh := event("Fresh", `{}`)
	mustAppend(t, c, "sub-new", esdb.NoStream{}, fresh)
	for name, sub := range map[string]*esdb.Subscription{"from start": fromStart, "from revision": fromRev, "from end": fromEnd} {
		if e := next(t, sub); e.EventID != live.EventID || e.EventNumber != 3 || e.StreamID != "sub-s" {
			t.Fatalf("%s: live event %+v", name, e)
		}
	}
	wantIDs(t, "stream created after subscribing", []*esdb.RecordedEvent{next(t, notYet)}, fresh)
}

func TestConcurrentAppendsReachSubscriberInOrder(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	sub, err := c.SubscribeToAll(testContext(t), esdb.SubscribeToAllOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatalf("SubscribeToAll: %v", err)
	}
	defer sub.Close()

	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var rev esdb.ExpectedRevision = esdb.NoStream{}
				if i > 0 {
					rev = esdb.Revision(uint64(i - 1))
				}
				_, err := c.AppendToStream(testContext(t), fmt.Sprintf("w-%d", w),
					esdb.AppendToStreamOptions{ExpectedRevision: rev}, event("E", `{}`))
				if err != nil {
					t.Errorf("writer %d, event %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	var last uint64
	revs := map[string]uint64{}
	for range writers * each {
		e := next(t, sub)
		if e.Position.Commit <= last {
			t.Fatalf("position %d after %d", e.Position.Commit, last)
		}
		last = e.Position.Commit
		if e.EventNumber != revs[e.StreamID] {
			t.Fatalf("%s: revision %d, want %d", e.StreamID, e.EventNumber, revs[e.StreamID])
		}
		revs[e.StreamID]++
	}
	wg.Wait()
}

func TestUnimplementedMethods(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t).URL())
	mustAppend(t, c, "del", esdb.NoStream{}, event("E", `{}`))
	_, err := c.DeleteStream(testContext(t), "del", esdb.DeleteStreamOptions{})
	wantCode(t, err, esdb.ErrorCodeUnsupportedFeature, "DeleteStream")
}

func TestDiscoverConnectionStringUsesGossip(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := newClient(t, "esdb+discover://"+srv.Addr()+"?tls=false")
	e := event("E", `{}`)
	mustAppend(t, c, "g", esdb.NoStream{}, e)
	wantIDs(t, "read back", originals(readStream(t, c, "g", esdb.ReadStreamOptions{}, 10)), e)
}

func TestStopDropsOpenSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := newClient(t, srv.URL())
	mustAppend(t, c, "s", esdb.NoStream{}, event("E", `{}`))
	ctx := testContext(t)
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatalf("SubscribeToAll: %v", err)
	}
	defer sub.Close()
	next(t, sub)

	stopped := make(chan struct{})
	go func() {
		srv.Stop()
		close(stopped)
	}()
	for {
		e := sub.Recv()
		if e.SubscriptionDropped != nil {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the subscription ended by the hang guard, not by Stop")
	}
	select {
	case <-stopped:
	case <-time.After(hangGuard):
		t.Fatal("Stop did not return")
	}
	srv.Stop() // a second Stop is harmless
}

func TestRestartKeepsDataAndAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c1 := newClient(t, srv.URL())
	a, b := event("A", `{}`), event("B", `{}`)
	mustAppend(t, c1, "r", esdb.NoStream{}, a)
	rb := mustAppend(t, c1, "r", esdb.Revision(0), b)
	srv.Stop()

	srv2, err := esdbtest.StartAt(srv.Addr(), srv.Data())
	if err != nil {
		t.Fatalf("StartAt(%s): %v", srv.Addr(), err)
	}
	t.Cleanup(srv2.Stop)
	if srv2.Addr() != srv.Addr() || srv2.URL() != srv.URL() || srv2.Data() != srv.Data() {
		t.Fatalf("restarted server: %s %s", srv2.Addr(), srv2.URL())
	}
	c2 := newClient(t, srv2.URL())
	wantIDs(t, "after restart", originals(readStream(t, c2, "r", esdb.ReadStreamOptions{}, 10)), a, b)

	sub, err := c2.SubscribeToAll(testContext(t), esdb.SubscribeToAllOptions{
		From: esdb.Position{Commit: rb.CommitPosition, Prepare: rb.PreparePosition},
	})
	if err != nil {
		t.Fatalf("SubscribeToAll: %v", err)
	}
	defer sub.Close()
	c := event("C", `{}`)
	rc := mustAppend(t, c2, "r", esdb.Revision(1), c)
	if rc.CommitPosition <= rb.CommitPosition || rc.NextExpectedVersion != 2 {
		t.Fatalf("append after restart: %+v (before: %+v)", rc, rb)
	}
	wantIDs(t, "subscription from the last position", []*esdb.RecordedEvent{next(t, sub)}, c)
}
