// Package esdb is the EventStoreDB (KurrentDB) backend of the event-store port,
// through github.com/EventStore/EventStore-Client-Go/v4. It works around three
// habits of that client: it gives up for good once its discovery attempts are
// spent (the store rebuilds it), its subscriptions do not reconnect (the
// caller resubscribes from its checkpoint, as projections.Runner does), and it
// speaks TLS unless the URL says tls=false (errors say so).
package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// Config configures the EventStoreDB backend.
type Config struct {
	// URL is the connection string, e.g. esdb://localhost:2113?tls=false.
	URL string
	// StreamPrefix starts the name of every stream the store writes, and
	// filters the $all subscription. Default "anomalyd-".
	StreamPrefix string
	// StartupTimeout bounds how long Open waits for the server. Default 60 s.
	StartupTimeout time.Duration
}

// conn holds the client and rebuilds it when it has given up for good.
type conn struct {
	conf   *esdb.Configuration
	tls    bool
	url    string
	logger *slog.Logger

	mu     sync.Mutex
	client *esdb.Client
}

func newConn(cfg Config, logger *slog.Logger) (*conn, error) {
	if !strings.HasPrefix(cfg.URL, "esdb://") && !strings.HasPrefix(cfg.URL, "esdb+discover://") {
		return nil, fmt.Errorf("esdb: URL %q must start with esdb:// or esdb+discover:// (for example esdb://localhost:2113?tls=false)", cfg.URL)
	}
	conf, err := esdb.ParseConnectionString(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("esdb: URL %q: %w", cfg.URL, err)
	}
	// The client logs every failure at error level to stdout; the store
	// reports what matters itself, so the client's own lines go to debug.
	conf.Logger = func(level esdb.LogLevel, format string, args ...interface{}) {
		logger.Debug("esdb client: "+fmt.Sprintf(format, args...), "level", level)
	}
	c := &conn{conf: conf, tls: !conf.DisableTLS, url: cfg.URL, logger: logger}
	if c.client, err = esdb.NewClient(conf); err != nil {
		return nil, fmt.Errorf("esdb: %w", err)
	}
	return c, nil
}

func (c *conn) get() *esdb.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// rebuild replaces the client old by a new one, unless another caller did
// already.
func (c *conn) rebuild(old *esdb.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != old {
		return
	}
	client, err := esdb.NewClient(c.conf)
	if err != nil {
		c.logger.Error("esdb: client not rebuilt", "err", err)
		return
	}
	old.Close()
	c.client = client
	c.logger.Warn("esdb: the client gave up on the server; reconnecting with a new one")
}

// do runs op with the current client; if that client has closed itself for
// good, it runs op once more on a rebuilt one. Every op the store runs is safe
// to repeat (appends are idempotent by event id).
func (c *conn) do(op func(*esdb.Client) error) error {
	client := c.get()
	err := op(client)
	if isClosed(err) {
		c.rebuild(client)
		err = op(c.get())
	}
	return err
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.client.Close()
}

func code(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func isClosed(err error) bool {
	c, ok := code(err)
	return ok && c == esdb.ErrorCodeConnectionClosed
}

// fail wraps an error of the client at the border, with a hint when TLS is the
// likely cause.
func (c *conn) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if k, ok := code(err); ok && c.tls && (k == esdb.ErrorUnavailable || k == esdb.ErrorCodeUnknown || k == esdb.ErrorCodeConnectionClosed) {
		return fmt.Errorf("esdb: %s: %w (TLS is on, the client's default: for a server started insecure, add tls=false to the URL)", op, err)
	}
	return fmt.Errorf("esdb: %s: %w", op, err)
}

// waitForServer probes the server until it answers, with a bounded, logged
// backoff: a store started beside its server (docker compose up) must not fail
// because it came up first.
func (c *conn) waitForServer(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.do(func(client *esdb.Client) error {
			return probe(ctx, client)
		})
		if err == nil {
			if attempt > 1 {
				c.logger.Info("esdb: server is up", "attempts", attempt)
			}
			return nil
		}
		c.logger.Warn("esdb: waiting for the server", "url", redact(c.url), "attempt", attempt, "retry_in", backoff, "err", err)
		if isClosed(err) || attempt > 1 {
			c.rebuild(c.get())
		}
		select {
		case <-ctx.Done():
			return c.fail(context.Background(), fmt.Sprintf("server at %s not reachable within %s", redact(c.url), timeout), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// probe reads a stream that does not exist: the cheapest request that needs a
// working connection and no rights beyond reading.
func probe(ctx context.Context, client *esdb.Client) error {
	rs, err := client.ReadStream(ctx, "$anomalyd-probe", esdb.ReadStreamOptions{}, 1)
	if err != nil {
		return err
	}
	defer rs.Close()
	_, err = recv(rs)
	if k, ok := code(err); ok && k == esdb.ErrorCodeResourceNotFound || errors.Is(err, errEOF) {
		return nil
	}
	return err
}

// redact drops credentials from a connection string before it is logged.
func redact(url string) string {
	if at := strings.Index(url, "@"); at > 0 {
		if scheme := strings.Index(url, "://"); scheme > 0 && scheme < at {
			return url[:scheme+3] + "***" + url[at:]
		}
	}
	return url
}
