package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// client is the HTTP/1.1 client of the measured requests. Each request has a
// keep-alive connection to itself for its duration, is written in one call
// and its response read with net/http's parser (http.ReadResponse), all on
// the caller's goroutine. net/http's Client hands each request to the
// connection's write loop and takes the response back from its read loop:
// two goroutine switches a request, which cost about 20 µs more CPU per
// request (BenchmarkClientPost). The load tool shares the server's cores, so
// what it spends is taken from the server it measures.
type client struct {
	addr, host string
	prefix     string      // the base URL's path, before each request's
	tls        *tls.Config // nil for http
	timeout    time.Duration
	dialer     net.Dialer

	// idle holds the connections not in use; a request that finds none
	// dials one.
	idle chan *conn
}

// conn is one keep-alive connection, its read buffer and the bytes of the
// request being written.
type conn struct {
	net.Conn
	r    *bufio.Reader
	req  []byte
	used time.Time // when its last response was read
}

// idleLimit is how long a connection may rest before it is closed rather
// than reused: half the 120 s after which anomalyd closes an idle connection.
// A server that closes them sooner is met by resending the request once on a
// new connection (see post).
const idleLimit = 60 * time.Second

// newClient returns a client of the server at base, an http or https URL
// whose path, if any, goes before each request's path. It keeps up to conns
// idle connections and gives each request timeout.
func newClient(base string, conns int, timeout time.Duration) (*client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want http://host:port or https://host:port", base)
	}
	c := &client{
		addr: u.Host, host: u.Host, prefix: strings.TrimRight(u.Path, "/"), timeout: timeout,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		idle:   make(chan *conn, max(conns, 1)),
	}
	if u.Port() == "" {
		c.addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	if u.Scheme == "https" {
		c.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return c, nil
}

// post sends a POST with a JSON body and the tenant's credentials, and
// returns the response's status and body, read whole so that a measured
// latency includes it. The request ends with an error after the client's
// timeout, or once ctx ends.
//
// A request that fails on a reused connection before a byte of the response
// came is sent once more on a new connection: that is a server that closed
// the connection while it rested, and never read the request.
func (c *client) post(ctx context.Context, t tenantKey, path, body string) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.get(ctx, attempt == 0)
		if err != nil {
			return 0, nil, err
		}
		cn.req = append(cn.req[:0], "POST "...)
		cn.req = append(cn.req, c.prefix...)
		cn.req = append(cn.req, path...)
		cn.req = append(cn.req, " HTTP/1.1\r\nHost: "...)
		cn.req = append(cn.req, c.host...)
		cn.req = append(cn.req, "\r\nX-API-Key: "...)
		cn.req = append(cn.req, t.key...)
		cn.req = append(cn.req, "\r\nX-Tenant-ID: "...)
		cn.req = append(cn.req, t.tenant...)
		cn.req = append(cn.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		cn.req = strconv.AppendInt(cn.req, int64(len(body)), 10)
		cn.req = append(cn.req, "\r\n\r\n"...)
		cn.req = append(cn.req, body...)

		status, b, keep, err := cn.roundTrip(ctx, time.Now().Add(c.timeout))
		if err != nil || !keep {
			cn.Close()
			if err != nil && reused && ctx.Err() == nil && closedWhileIdle(err) {
				continue
			}
			return status, b, err
		}
		c.put(cn)
		return status, b, nil
	}
}

// closedWhileIdle reports whether err is how a request fails on a connection
// the server had closed before it came: the write refused, or the response
// ended before its first byte.
func closedWhileIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip writes cn.req and reads the whole response before deadline, or
// until ctx ends. keep reports whether the connection may carry another
// request.
func (cn *conn) roundTrip(ctx context.Context, deadline time.Time) (status int, body []byte, keep bool, err error) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := cn.SetDeadline(deadline); err != nil {
		return 0, nil, false, err
	}
	// A deadline in the past ends a Write or Read in progress at once.
	defer context.AfterFunc(ctx, func() { cn.SetDeadline(time.Unix(1, 0)) })()
	if _, err := cn.Write(cn.req); err != nil {
		return 0, nil, false, err
	}
	// The response's first byte is read apart, so that a connection closed
	// before it came fails with io.EOF (http.ReadResponse would say
	// io.ErrUnexpectedEOF): see closedWhileIdle.
	if _, err := cn.r.Peek(1); err != nil {
		return 0, nil, false, err
	}
	res, err := http.ReadResponse(cn.r, nil)
	if err != nil {
		return 0, nil, false, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, false, err
	}
	cn.used = time.Now()
	return res.StatusCode, b, !res.Close, nil
}

// get returns an idle connection when reuse allows it and one has not rested
// too long, and otherwise dials a new one. reused says which it is.
func (c *client) get(ctx context.Context, reuse bool) (cn *conn, reused bool, err error) {
	for reuse {
		var cn *conn
		select {
		case cn = <-c.idle:
		default:
		}
		if cn == nil {
			break
		}
		if time.Since(cn.used) < idleLimit {
			return cn, true, nil
		}
		cn.Close()
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, false, err
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, false, err
		}
		nc = tc
	}
	return &conn{Conn: nc, r: bufio.NewReaderSize(nc, 4096)}, false, nil
}

// put keeps cn for the next request, or closes it when as many are kept.
func (c *client) put(cn *conn) {
	select {
	case c.idle <- cn:
	default:
		cn.Close()
	}
}

// close closes the idle connections.
func (c *client) close() {
	for {
		select {
		case cn := <-c.idle:
			cn.Close()
		default:
			return
		}
	}
}
