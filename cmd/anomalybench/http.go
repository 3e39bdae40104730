package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// tenantKey is the credential of one tenant.
type tenantKey struct {
	tenant, key string
}

// workload is what the HTTP phases send: anomaly i is reported against agent
// i mod agents, and agent j belongs to tenant j mod tenants, so each agent
// lives in one tenant.
type workload struct {
	base    string
	client  *client      // the measured requests
	metrics *http.Client // the server's /metrics, between phases
	tenants []tenantKey
	agents  []uuid.UUID
	// ids holds the id the server gave anomaly i, "" when its report failed.
	ids []string
}

func newWorkload(base string, tenants []tenantKey, anomalies, agents, clients int, timeout time.Duration) (*workload, error) {
	c, err := newClient(base, clients, timeout)
	if err != nil {
		return nil, err
	}
	w := &workload{
		base: strings.TrimRight(base, "/"), client: c, tenants: tenants,
		agents: make([]uuid.UUID, agents), ids: make([]string, anomalies),
		metrics: &http.Client{Timeout: timeout, Transport: &http.Transport{
			Proxy: nil, // loopback: never through a proxy from the environment
		}},
	}
	for j := range w.agents {
		w.agents[j] = uuid.New()
	}
	return w, nil
}

// close closes the connections the workload keeps.
func (w *workload) close() {
	w.client.close()
	w.metrics.CloseIdleConnections()
}

func (w *workload) agentOf(i int) int { return i % len(w.agents) }

// reported returns the indexes of the anomalies whose report succeeded, the
// ones to resolve.
func (w *workload) reported() []int {
	var order []int
	for i, id := range w.ids {
		if id != "" {
			order = append(order, i)
		}
	}
	return order
}

func (w *workload) tenantOf(i int) tenantKey { return w.tenants[w.agentOf(i)%len(w.tenants)] }

// report is operation i of the report phase: a high-severity anomaly, which
// suspends its agent.
func (w *workload) report(ctx context.Context, i int) (string, string) {
	body := fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high","details":{"rps":950,"source":"anomalybench"}}`,
		w.agents[w.agentOf(i)])
	status, b, err := w.client.post(ctx, w.tenantOf(i), "/v1/anomalies", body)
	if err != nil {
		return transportKind(err), err.Error()
	}
	if status != http.StatusCreated {
		return fmt.Sprintf("HTTP %d", status), string(b)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
		return "bad response", fmt.Sprintf("201 without an id: %.200s", b)
	}
	w.ids[i] = out.ID
	return "", ""
}

// resolve is operation k of the resolve phase, on the anomaly at index
// order[k]. Both resolutions it uses reverse the auto-response, so the resolve
// that releases an agent's last hold restores it.
func (w *workload) resolve(order []int) op {
	return func(ctx context.Context, k int) (string, string) {
		i := order[k]
		res := "false_positive"
		if i%2 == 1 {
			res = "accepted_risk"
		}
		status, b, err := w.client.post(ctx, w.tenantOf(i), "/v1/anomalies/"+w.ids[i]+"/resolve",
			`{"resolution":"`+res+`","notes":"anomalybench"}`)
		if err != nil {
			return transportKind(err), err.Error()
		}
		if status != http.StatusOK {
			return fmt.Sprintf("HTTP %d", status), string(b)
		}
		return "", ""
	}
}

// transportKind names a transport error by its cause, without the addresses
// that would make every error a kind of its own.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "transport: timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport: connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "transport: connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport: connection closed"
	}
	return "transport: other"
}
