package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

// server is an anomalyd binary that the tool started as a child process.
type server struct {
	cmd     *exec.Cmd
	base    string // http://host:port
	natsURL string
	exited  chan struct{}
	log     *serverLog
	started time.Time

	// caughtUp is what the server logged when its read model had replayed
	// the log at start-up, set before it listens.
	caughtUp struct {
		position uint64
		took     time.Duration
	}
	// snapshot is what it logged when it read its read models from a
	// snapshot, before that replay, which then began after it.
	snapshot struct {
		position uint64
		took     time.Duration
	}
}

// snapshotLoaded is the message anomalyd logs when it starts from a snapshot
// of its read models.
const snapshotLoaded = "read models loaded from snapshot; the read model replays the log after it"

// serverLog counts the warnings and errors the server logs while it is loaded
// and keeps the last few: a "read model behind a command" warning, for one,
// explains a latency tail.
type serverLog struct {
	mu       sync.Mutex
	warnings int
	errors   int
	last     []string
}

const serverLogKeep = 5

func (l *serverLog) add(level, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch level {
	case "WARN":
		l.warnings++
	case "ERROR":
		l.errors++
	default:
		return
	}
	if len(l.last) == serverLogKeep {
		l.last = l.last[1:]
	}
	l.last = append(l.last, line)
}

func (l *serverLog) summary() ServerLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ServerLog{Warnings: l.warnings, Errors: l.errors, Last: append([]string(nil), l.last...)}
}

// buildAnomalyd builds ./cmd/anomalyd into dir. The working directory must be
// the module root (the directory with go.mod).
func buildAnomalyd(ctx context.Context, dir string) (string, error) {
	if _, err := os.Stat("go.mod"); err != nil {
		return "", errors.New("no go.mod in the working directory: run from the module root or pass --anomalyd")
	}
	bin := filepath.Join(dir, "anomalyd")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/anomalyd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/anomalyd: %v\n%s", err, out)
	}
	return bin, nil
}

// createKeys writes one API key per tenant to the keys file in dataDir, before
// the server starts, and returns the secrets by tenant.
func createKeys(dataDir string, tenants []string) (map[string]string, error) {
	keys := make(map[string]string, len(tenants))
	path := filepath.Join(dataDir, "keys.json")
	for _, t := range tenants {
		_, secret, err := auth.CreateKey(path, t, "anomalybench", domain.AllScopes, time.Now())
		if err != nil {
			return nil, fmt.Errorf("create key for %s: %w", t, err)
		}
		keys[t] = secret
	}
	return keys, nil
}

// startServer runs bin on dataDir with random loopback ports and no rate
// limit, and returns once it logs that it listens. The listening line is
// logged at info, so the server runs at its default level, info, which also
// logs one line per request, as it would in production.
func startServer(ctx context.Context, bin, dataDir string) (*server, error) {
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0",
		"--rate-limit", "0", "--log-format", "json", "--log-level", "info")
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), log: &serverLog{}, started: time.Now()}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			// After start-up only warnings and errors are counted; the access
			// log's info lines, one per request, are skipped undecoded.
			if s.base != "" && bytes.Contains(sc.Bytes(), []byte(`"level":"INFO"`)) {
				continue
			}
			var line struct {
				Level, Msg, Addr, NATS string
				Position               uint64
				Took                   time.Duration // slog's JSON writes nanoseconds
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if line.Msg == "read model caught up" && s.base == "" {
				s.caughtUp.position = line.Position
				s.caughtUp.took = line.Took
			}
			if line.Msg == snapshotLoaded && s.base == "" {
				s.snapshot.position = line.Position
				s.snapshot.took = line.Took
			}
			if line.Msg == "anomalyd listening" && s.base == "" {
				s.base, s.natsURL = line.Addr, line.NATS
				close(ready)
			}
			s.log.add(line.Level, strings.TrimSpace(sc.Text()))
		}
		io.Copy(io.Discard, stderr) // a line over 1 MiB stops the scanner; the pipe must not fill up
	}()
	go func() { cmd.Wait(); close(s.exited) }()
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("anomalyd exited during start-up (%v); last warnings: %v", cmd.ProcessState, s.log.summary().Last)
	case <-ctx.Done():
		s.stop(time.Second)
		return nil, fmt.Errorf("anomalyd did not start: %w", ctx.Err())
	}
}

// waitReady polls GET /readyz until it answers 200 and returns when it did.
func (s *server) waitReady(ctx context.Context) (time.Time, error) {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", nil)
		if err != nil {
			return time.Time{}, err
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("not ready: %w", ctx.Err())
		case <-s.exited:
			return time.Time{}, fmt.Errorf("anomalyd exited before it was ready: %v", s.cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit, then kills the
// process. It returns an error when the server did not stop cleanly.
func (s *server) stop(grace time.Duration) error {
	select {
	case <-s.exited:
		return fmt.Errorf("anomalyd had exited on its own: %v", s.cmd.ProcessState)
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			return fmt.Errorf("anomalyd stopped with %v", s.cmd.ProcessState)
		}
		return nil
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("anomalyd did not stop within %s of SIGTERM: killed", grace)
	}
}
