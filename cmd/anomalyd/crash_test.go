package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/anomalyd/anomalyd/natseffects"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// process is the real anomalyd binary running as a child process.
type process struct {
	cmd     *exec.Cmd
	base    string // http://host:port
	natsURL string
	// startedAfter is the position of the read-model snapshot the start read
	// (0: it replayed the whole log).
	startedAfter uint64
	exited       chan struct{}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anomalyd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// launch starts the binary on dir with random loopback ports, and flags, and
// waits for the line that says it listens.
func launch(t *testing.T, bin, dir string, flags ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--nats-listen", "127.0.0.1:0", "--rate-limit", "0",
		"--log-format", "json", "--log-level", "info", "--effects-duplicate-window", "100ms"}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg, Addr, NATS string
				Position        uint64
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "read models loaded from snapshot; the read model replays the log after it":
				p.startedAfter = line.Position
			case "anomalyd listening":
				p.base, p.natsURL = line.Addr, line.NATS
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case <-ready:
	case <-p.exited:
		t.Fatal("anomalyd exited during start-up")
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("anomalyd did not start within 60 s")
	}
	t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	return p
}

func (p *process) kill(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	<-p.exited
}

type acked struct {
	mu       sync.Mutex
	reported map[string]string // anomaly id -> agent id
	resolved map[string]string // anomaly id -> resolution
}

func (p *process) post(client *http.Client, key, path, body string) (int, map[string]any, error) {
	req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(body))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("X-Tenant-ID", "acme")
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, err
}

// load reports and resolves anomalies from several clients until the server
// dies or the deadline passes, recording every command that got a 2xx.
func load(p *process, key string, clients int, deadline time.Time, a *acked) {
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for time.Now().Before(deadline) {
				agent := uuid.NewString()
				st, body, err := p.post(client, key, "/v1/anomalies",
					fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high"}`, agent))
				if err != nil {
					return // the server is gone
				}
				if st != http.StatusCreated {
					continue
				}
				id := body["id"].(string)
				a.mu.Lock()
				a.reported[id] = agent
				a.mu.Unlock()
				res := []string{"false_positive", "mitigated", "accepted_risk", "agent_revoked"}[rand.IntN(4)]
				st, _, err = p.post(client, key, "/v1/anomalies/"+id+"/resolve", `{"resolution":"`+res+`"}`)
				if err != nil {
					return
				}
				if st == http.StatusOK {
					a.mu.Lock()
					a.resolved[id] = res
					a.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

// readLogAndEffects returns every event of the log and every stored effect, read
// straight from the restarted server's NATS.
func readLogAndEffects(t *testing.T, natsURL string) ([]eventstore.Recorded, []projections.CloudEvent) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := njs.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := jetstream.New(ctx, js, jetstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var events []eventstore.Recorded
	done := errors.New("done")
	if err := store.Subscribe(ctx, 0, func(r eventstore.Recorded) error {
		events = append(events, r)
		if r.Position >= head {
			return done
		}
		return nil
	}); !errors.Is(err, done) {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, natseffects.DefaultStream, njs.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var effects []projections.CloudEvent
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var ce projections.CloudEvent
			if err := json.Unmarshal(m.Data(), &ce); err != nil {
				t.Fatal(err)
			}
			effects = append(effects, ce)
		}
		if n == 0 {
			return events, effects
		}
	}
}

// TestCrashLosesNothingAndRepeatsNoEffect kills the real binary with SIGKILL in
// the middle of a load of reports and resolves, starts it again on the same
// data directory, and checks that every command that got a 2xx is in the log,
// that no anomaly has two resolutions, and that every effect the log calls for
// is stored exactly once. The binary keeps a snapshot of its read models every
// hundred events or so, so the kills fall before, during and after the writing
// of snapshots, and the starts after them read the last one written.
func TestCrashLosesNothingAndRepeatsNoEffect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	_, key, err := auth.CreateKey(filepath.Join(dir, "keys.json"), "acme", "crash", domain.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := &acked{reported: map[string]string{}, resolved: map[string]string{}}
	snapshots := []string{"--snapshot-every", "100"}
	for round := range 2 {
		p := launch(t, bin, dir, snapshots...)
		loadDone := make(chan struct{})
		go func() { load(p, key, 8, time.Now().Add(20*time.Second), a); close(loadDone) }()
		time.Sleep(time.Duration(700+rand.IntN(600)) * time.Millisecond)
		p.kill(syscall.SIGKILL)
		<-loadDone
		t.Logf("round %d: started after snapshot position %d, killed with %d reports and %d resolves acknowledged",
			round, p.startedAfter, len(a.reported), len(a.resolved))
		time.Sleep(200 * time.Millisecond) // past the effects duplicate window: only the checkpoint can prevent a repeat
	}
	if len(a.resolved) < 20 {
		t.Fatalf("only %d resolves acknowledged before the kills: the load did not run", len(a.resolved))
	}

	p := launch(t, bin, dir, snapshots...)
	// Effects are published in log order: once a new anomaly's effect is
	// stored, the publisher has been through the whole log.
	client := &http.Client{Timeout: 10 * time.Second}
	st, body, err := p.post(client, key, "/v1/anomalies", fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high"}`, uuid.NewString()))
	if err != nil || st != http.StatusCreated {
		t.Fatalf("sentinel report: %d %v", st, err)
	}
	sentinel := body["id"].(string)
	var events []eventstore.Recorded
	var effects []projections.CloudEvent
	for deadline := time.Now().Add(30 * time.Second); ; {
		events, effects = readLogAndEffects(t, p.natsURL)
		if len(effects) > 0 && effects[len(effects)-1].Data.AnomalyID != nil && effects[len(effects)-1].Data.AnomalyID.String() == sentinel {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sentinel's effect never arrived")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every acknowledged command is in the log; no anomaly has two resolutions.
	resolutions := map[string][]string{}
	reported := map[string]bool{}
	for _, r := range events {
		switch r.Type {
		case domain.EventAnomalyReported:
			reported[r.Stream.ID] = true
		case domain.EventAnomalyResolved:
			var d domain.AnomalyResolved
			json.Unmarshal(r.Data, &d)
			resolutions[r.Stream.ID] = append(resolutions[r.Stream.ID], string(d.Resolution))
		}
	}
	for id := range a.reported {
		if !reported[id] {
			t.Errorf("acknowledged report of %s is not in the log", id)
		}
	}
	for id, res := range a.resolved {
		if got := resolutions[id]; len(got) != 1 || got[0] != res {
			t.Errorf("acknowledged resolve of %s as %s: the log has %v", id, res, got)
		}
	}
	for id, got := range resolutions {
		if len(got) > 1 {
			t.Errorf("anomaly %s has %d resolutions: %v", id, len(got), got)
		}
	}

	// Every effect the log calls for is stored exactly once. Each report is on a
	// fresh agent, so the expected effects follow from each anomaly alone.
	want := map[string]string{} // cause event id -> effect type
	for _, r := range events {
		switch r.Type {
		case domain.EventAnomalyReported:
			want[r.ID.String()] = "agent.suspended"
		case domain.EventAnomalyResolved:
			var d domain.AnomalyResolved
			json.Unmarshal(r.Data, &d)
			switch d.Resolution {
			case domain.ResolutionFalsePositive, domain.ResolutionAcceptedRisk:
				want[r.ID.String()] = "agent.restored"
			case domain.ResolutionAgentRevoked:
				want[r.ID.String()] = "agent.revoked"
			}
		}
	}
	seen := map[string]int{}
	for _, e := range effects {
		cause := e.Data.CauseEventID.String()
		seen[cause]++
		if want[cause] != e.Type {
			t.Errorf("effect %s (%s) caused by %s: the log calls for %q", e.ID, e.Type, cause, want[cause])
		}
	}
	for cause, typ := range want {
		if seen[cause] != 1 {
			t.Errorf("effect %s of event %s stored %d times, want once", typ, cause, seen[cause])
		}
	}
	t.Logf("%d events, %d effects, all once; the last start read a snapshot taken after position %d", len(events), len(effects), p.startedAfter)
	// Well over a hundred events before the last kill: the start read the
	// snapshot the killed process kept last.
	if p.startedAfter == 0 && len(a.reported) > 200 {
		t.Errorf("the last start replayed the whole log of %d events: no snapshot kept while running", len(events))
	}
	p.kill(syscall.SIGTERM)
}
