package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/esdb"
	"github.com/anomalyd/anomalyd/eventstore/esdb/esdbtest"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// hangGuard bounds every wait of these tests; it is never an assertion.
const hangGuard = 30 * time.Second

// effectsWorld is anomalyd in miniature, wired as cmd/anomalyd wires it: an
// embedded NATS listening on loopback, an event store, the agent read model the
// agent commands decide on, and the effects publisher writing to the real
// effects stream.
type effectsWorld struct {
	dir   string
	url   string // NATS client URL
	js    njs.JetStream
	store eventstore.Store
	svc   *app.Service
	pub   *projections.Runner
	stop  func() // stops everything; safe to call twice
}

// startEffectsWorld starts the world with the log in JetStream, or in the store
// that openLog returns when it is not nil (the effects stay in NATS).
func startEffectsWorld(t *testing.T, openLog func(t *testing.T) eventstore.Store) *effectsWorld {
	t.Helper()
	w := &effectsWorld{dir: t.TempDir()}
	ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: w.dir, Host: "127.0.0.1", Port: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.url = ns.ClientURL()
	nc, err := nats.Connect(w.url)
	if err != nil {
		ns.Shutdown()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	w.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	t.Cleanup(w.stop)
	if w.js, err = njs.New(nc); err != nil {
		t.Fatal(err)
	}
	if openLog != nil {
		w.store = openLog(t)
	} else if w.store, err = jetstream.New(ctx, w.js, jetstream.Config{}); err != nil {
		t.Fatal(err)
	}
	sink, err := natseffects.New(ctx, w.js, natseffects.Config{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	agents := projections.NewAgents()
	readModel := projections.NewRunner("read-model", w.store, agents, logger)
	w.pub = projections.NewRunner("effects", w.store, projections.NewEffects(sink, logger), logger)
	for _, r := range []*projections.Runner{readModel, w.pub} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("runner stopped: %v", err)
			}
		}()
	}
	w.svc = app.NewService(w.store, app.WithContainments(projections.LiveAgents{Runner: readModel, Agents: agents}))
	return w
}

// catchUp waits until the effects publisher has published for every event.
func (w *effectsWorld) catchUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := w.pub.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// effectsHistory writes, through the command service, a history whose effects
// are known: 5 effects for acme, 4 for globex, none for initech.
func effectsHistory(t *testing.T, svc *app.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	report := func(tenant string, agent uuid.UUID, sev domain.Severity) uuid.UUID {
		t.Helper()
		res, err := svc.Report(ctx, principal(tenant), domain.ReportAnomaly{AgentID: agent, AnomalyType: "rate_spike", Severity: sev})
		if err != nil {
			t.Fatal(err)
		}
		return res.Anomaly.ID
	}
	resolve := func(tenant string, id uuid.UUID, res domain.Resolution) {
		t.Helper()
		if _, err := svc.Resolve(ctx, principal(tenant), id, domain.ResolveAnomaly{Resolution: res}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// acme, agent 1: two overlapping anomalies. suspended; the throttle under
	// it changes nothing; a false positive leaves it throttled; the dismissal
	// restores it. 3 effects.
	a1 := uuid.New()
	x1 := report("acme", a1, domain.SeverityHigh)
	x2 := report("acme", a1, domain.SeverityMedium)
	resolve("acme", x1, domain.ResolutionFalsePositive)
	_, err := svc.Dismiss(ctx, principal("acme"), x2, domain.DismissAnomaly{Reason: "duplicate report"})
	check(err)

	// acme, agent 2: quarantined; a second anomaly, mitigated and accepted
	// risks keep it quarantined; the manual restore releases it. 2 effects.
	a2 := uuid.New()
	y1 := report("acme", a2, domain.SeverityCritical)
	y2 := report("acme", a2, domain.SeverityHigh)
	_, err = svc.Investigate(ctx, principal("acme"), y2, domain.InvestigateAnomaly{})
	check(err)
	resolve("acme", y1, domain.ResolutionMitigated)
	resolve("acme", y2, domain.ResolutionAcceptedRisk)
	_, err = svc.Restore(ctx, principal("acme"), a2, domain.RestoreAgent{})
	check(err)

	// globex, agent 3: throttled, then revoked by hand; the later false
	// positive cannot bring it back. 2 effects.
	a3 := uuid.New()
	z1 := report("globex", a3, domain.SeverityMedium)
	_, err = svc.Revoke(ctx, principal("globex"), a3, domain.RevokeAgent{Reason: "stolen credentials"})
	check(err)
	resolve("globex", z1, domain.ResolutionFalsePositive)

	// globex, agent 4: suspended, then revoked by the resolution. 2 effects.
	w1 := report("globex", uuid.New(), domain.SeverityHigh)
	resolve("globex", w1, domain.ResolutionAgentRevoked)

	// initech: a low anomaly contains nothing, so no effect.
	resolve("initech", report("initech", uuid.New(), domain.SeverityLow), domain.ResolutionFalsePositive)
}

func checkRun(t *testing.T, args ...string) result {
	t.Helper()
	return runCtl(t, env(nil), append([]string{"effects", "check"}, args...)...)
}

// wantCheck runs effects check and fails unless it exits as wanted (0 or not)
// and stdout holds every one of want.
func wantCheck(t *testing.T, ok bool, args []string, want ...string) result {
	t.Helper()
	r := checkRun(t, args...)
	if (r.code == 0) != ok {
		t.Fatalf("effects check %s: exit %d, want ok=%v\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), r.code, ok, r.stdout, r.stderr)
	}
	for _, s := range want {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("effects check %s: stdout lacks %q\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), s, r.stdout, r.stderr)
		}
	}
	return r
}

// storedEffect returns the message at seq of the effects stream, and its
// decoded CloudEvent.
func storedEffect(t *testing.T, js njs.JetStream, stream string, seq uint64) (*njs.RawStreamMsg, projections.CloudEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	var ce projections.CloudEvent
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		t.Fatal(err)
	}
	return m, ce
}

// publish stores a message on the stream behind the publisher's back, with the
// headers given, a fresh Nats-Msg-Id, so that JetStream's duplicate window does
// not drop it, and no expected last sequence, which the original had.
func publish(t *testing.T, js njs.JetStream, subject string, header nats.Header, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	msg := nats.NewMsg(subject)
	for k, v := range header {
		msg.Header[k] = append([]string(nil), v...)
	}
	msg.Header.Set(nats.MsgIdHdr, uuid.NewString())
	msg.Header.Del(njs.ExpectedLastSeqHeader)
	msg.Data = body
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

func TestEffectsCheck(t *testing.T) {
	w := startEffectsWorld(t, nil)
	effectsHistory(t, w.svc)
	w.catchUp(t)
	url := "--nats-url=" + w.url

	t.Run("CleanWhenThePublisherCaughtUp", func(t *testing.T) {
		wantCheck(t, true, []string{url}, "ok: 9 effects expected, 9 stored, each once\n")
		wantCheck(t, true, []string{url, "--tenant", "acme"}, "ok: 5 effects expected, 5 stored, each once\n")
		wantCheck(t, true, []string{url, "--tenant", "globex"}, "ok: 4 effects expected, 4 stored, each once\n")
		wantCheck(t, true, []string{url, "--tenant", "initech"}, "ok: 0 effects expected, 0 stored, each once\n")
	})

	// The second effect (acme's agent 1, throttled) stored a second time: same
	// subject, body and headers, another Nats-Msg-Id.
	m, dup := storedEffect(t, w.js, natseffects.DefaultStream, 2)
	if dup.Data.TenantID != "acme" {
		t.Fatalf("second effect belongs to %s, want acme", dup.Data.TenantID)
	}
	publish(t, w.js, m.Subject, m.Header, m.Data)

	t.Run("DuplicatedWhenAnEffectIsStoredTwice", func(t *testing.T) {
		wantCheck(t, false, []string{url},
			"DUPLICATED effect "+dup.ID+" ", "stored again at stream sequence 10, first at 2",
			"0 missing, 0 extra, 1 duplicated (9 effects expected, 10 stored)\n")
		wantCheck(t, false, []string{url, "--tenant", "acme"}, "1 duplicated (5 effects expected, 6 stored)\n")
		wantCheck(t, true, []string{url, "--tenant", "globex"}, "ok: 4 effects expected, 4 stored, each once\n")
	})

	// Two effects that no event calls for: one with an id and a cause that the
	// log does not know, with a cause position far beyond the log (which must
	// not pass for the publisher's progress), and one with a fresh id for a
	// real cause (globex's last effect), so that event has two effects.
	forged := dup
	forged.ID, forged.Data.CauseEventID = uuid.NewString(), uuid.New()
	body, _ := json.Marshal(forged)
	header := nats.Header{}
	header.Set("Anomalyd-Cause-Position", "999999999")
	publish(t, w.js, m.Subject, header, body)

	_, last := storedEffect(t, w.js, natseffects.DefaultStream, 9)
	second := last
	second.ID = uuid.NewString()
	body, _ = json.Marshal(second)
	publish(t, w.js, projections.EffectSubject(last.Data.TenantID, last.Data.AgentID), nil, body)

	t.Run("ExtraWhenNoEventCallsForAnEffect", func(t *testing.T) {
		wantCheck(t, false, []string{url},
			"EXTRA effect "+forged.ID+" ", "at stream sequence 11: no event of the log calls for it",
			"EXTRA effect "+second.ID+" ",
			"DUPLICATED cause event "+last.Data.CauseEventID.String()+" caused effect "+last.ID+" (stream sequence 9) and effect "+second.ID+" (stream sequence 12)",
			"0 missing, 2 extra, 2 duplicated (9 effects expected, 12 stored)\n")
		wantCheck(t, false, []string{url, "--tenant", "globex"}, "0 missing, 1 extra, 1 duplicated (4 effects expected, 5 stored)\n")
		r := wantCheck(t, false, []string{url, "--tenant", "acme"}, "0 missing, 1 extra, 1 duplicated (5 effects expected, 7 stored)\n")
		if strings.Contains(r.stdout, "PENDING") {
			t.Fatalf("a forged cause position made effects pending:\n%s", r.stdout)
		}
	})

	t.Run("FailsOnAnUnknownStream", func(t *testing.T) {
		r := checkRun(t, url, "--effects-stream", "NO_SUCH_STREAM")
		if r.code == 0 || !strings.Contains(r.stderr, "NO_SUCH_STREAM not found") {
			t.Fatalf("unknown stream: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// The same findings from the data directory of the stopped service.
	w.stop()
	t.Run("ReadsAStoppedServiceOffline", func(t *testing.T) {
		wantCheck(t, false, []string{"--offline-data-dir", w.dir}, "0 missing, 2 extra, 2 duplicated (9 effects expected, 12 stored)\n")
		wantCheck(t, true, []string{"--offline-data-dir", w.dir, "--tenant", "initech"}, "ok: 0 effects expected, 0 stored, each once\n")
	})
	t.Run("UnreachableNATS", func(t *testing.T) {
		r := checkRun(t, "--nats-url", "nats://127.0.0.1:1")
		if r.code == 0 || !strings.Contains(r.stderr, "offline-data-dir") {
			t.Fatalf("unreachable NATS: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// copyEffects builds a stream named name, with subjects prefix.>, out of every
// message of the effects stream, re-published with its original body and
// headers (Nats-Msg-Id included) under prefix.<original subject>. edit may
// change a message's body, or drop it by returning nil.
func copyEffects(t *testing.T, js njs.JetStream, name, prefix string, edit func(seq uint64, body []byte) []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if _, err := js.CreateStream(ctx, njs.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Storage: njs.FileStorage}); err != nil {
		t.Fatal(err)
	}
	src, err := js.Stream(ctx, natseffects.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := src.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := src.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		body := edit(seq, m.Data)
		if body == nil {
			continue
		}
		msg := nats.NewMsg(prefix + "." + m.Subject)
		msg.Header, msg.Data = m.Header, body
		msg.Header.Del(njs.ExpectedLastSeqHeader) // the copy has its own sequence
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// The effects stream denies deletes, as it should, so an effect lost between
// the publisher and the stream is simulated on a copy: a stream built from
// every stored effect but one, which the check reads through --effects-stream.
// It identifies effects by their CloudEvent and cause header, not by subject,
// so the copy's own subjects do not matter.
func TestEffectsCheckOnACopyOfTheStream(t *testing.T) {
	w := startEffectsWorld(t, nil)
	effectsHistory(t, w.svc)
	w.catchUp(t)
	url := "--nats-url=" + w.url
	keep := func(_ uint64, body []byte) []byte { return body }

	t.Run("CleanOnAFullCopy", func(t *testing.T) {
		copyEffects(t, w.js, "ANOMALYD_EFFECTS_FULL_COPY", "audit.full", keep)
		wantCheck(t, true, []string{url, "--effects-stream", "ANOMALYD_EFFECTS_FULL_COPY"}, "ok: 9 effects expected, 9 stored, each once\n")
	})

	t.Run("MissingWhenAnEffectIsLost", func(t *testing.T) {
		// The 7th effect is globex's agent 3 revoked; effects after it are
		// stored, so it is lost, not late.
		_, lost := storedEffect(t, w.js, natseffects.DefaultStream, 7)
		copyEffects(t, w.js, "ANOMALYD_EFFECTS_AUDIT_COPY", "audit.copy", func(seq uint64, body []byte) []byte {
			if seq == 7 {
				return nil
			}
			return body
		})
		args := []string{url, "--effects-stream", "ANOMALYD_EFFECTS_AUDIT_COPY"}
		wantCheck(t, false, args, "MISSING effect "+lost.ID+" (agent.revoked, agent "+lost.Data.AgentID.String()+" of tenant globex",
			"1 missing, 0 extra, 0 duplicated (9 effects expected, 8 stored)\n")
		wantCheck(t, true, append(args, "--tenant", "acme"), "ok: 5 effects expected, 5 stored, each once\n")
	})

	t.Run("PendingWhenThePublisherLags", func(t *testing.T) {
		// Without the last effect the copy looks like a publisher that has not
		// got to the last event yet.
		_, late := storedEffect(t, w.js, natseffects.DefaultStream, 9)
		copyEffects(t, w.js, "ANOMALYD_EFFECTS_LAG_COPY", "audit.lag", func(seq uint64, body []byte) []byte {
			if seq == 9 {
				return nil
			}
			return body
		})
		r := wantCheck(t, true, []string{url, "--effects-stream", "ANOMALYD_EFFECTS_LAG_COPY"},
			"PENDING effect "+late.ID+" ", "ok: 9 effects expected, 8 stored, each once; 1 pending")
		if strings.Contains(r.stdout, "MISSING") {
			t.Fatalf("a late effect reported missing:\n%s", r.stdout)
		}
	})

	t.Run("ExtraWhenAnEffectSaysTheWrongThing", func(t *testing.T) {
		// The first effect (acme's agent 1, suspended) stored as quarantined.
		_, first := storedEffect(t, w.js, natseffects.DefaultStream, 1)
		copyEffects(t, w.js, "ANOMALYD_EFFECTS_ALTERED_COPY", "audit.altered", func(seq uint64, body []byte) []byte {
			if seq == 1 {
				return []byte(strings.Replace(string(body), `"agent.suspended"`, `"agent.quarantined"`, 1))
			}
			return body
		})
		wantCheck(t, false, []string{url, "--effects-stream", "ANOMALYD_EFFECTS_ALTERED_COPY"},
			"EXTRA effect "+first.ID+" (agent.quarantined", "type agent.quarantined, want agent.suspended",
			"0 missing, 1 extra, 0 duplicated (9 effects expected, 9 stored)\n")
	})
}

// With the log in EventStoreDB the effects still live in NATS: positions are
// EventStoreDB's, and the check reads both.
func TestEffectsCheckWithTheLogInEventStoreDB(t *testing.T) {
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	w := startEffectsWorld(t, func(t *testing.T) eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		s, err := esdb.Open(ctx, esdb.Config{URL: srv.URL()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	})
	effectsHistory(t, w.svc)
	w.catchUp(t)
	args := []string{"--store", "esdb", "--esdb-url", srv.URL(), "--nats-url", w.url}
	wantCheck(t, true, args, "ok: 9 effects expected, 9 stored, each once\n")

	_, first := storedEffect(t, w.js, natseffects.DefaultStream, 1)
	header := nats.Header{}
	header.Set("Anomalyd-Cause-Position", "0")
	publish(t, w.js, projections.EffectSubject("globex", first.Data.AgentID), header, mustJSON(t, first))
	// A second, altered copy of the first effect: another tenant's subject and
	// a cause position that is not its cause's.
	wantCheck(t, false, args, "DUPLICATED effect "+first.ID, "cause position 0, want ", "subject maip.effects.globex.agent.",
		"0 missing, 1 extra, 1 duplicated (9 effects expected, 10 stored)\n")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
