package main

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/cputime"
)

// countingServer is an httptest server that counts the connections it
// accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

var benchTenant = tenantKey{tenant: "bench-0", key: "ak_test_0123456789"}

func TestClientPostSendsTheRequestAndReusesTheConnection(t *testing.T) {
	var host string
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/prefix/v1/anomalies" || r.Host != host ||
			r.Header.Get("X-API-Key") != benchTenant.key || r.Header.Get("X-Tenant-ID") != benchTenant.tenant ||
			r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(body)) {
			http.Error(w, "unexpected request: "+r.Method+" "+r.URL.Path+" "+r.Host, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write(append([]byte("got "), body...))
	})
	host = strings.TrimPrefix(srv.URL, "http://")
	c, err := newClient(srv.URL+"/prefix/", 4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i, body := range []string{`{"a":1}`, `{"b":"two"}`, ``} {
		status, b, err := c.post(context.Background(), benchTenant, "/v1/anomalies", body)
		if err != nil || status != http.StatusCreated || string(b) != "got "+body {
			t.Fatalf("request %d: %d %q %v", i, status, b, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for three requests in turn, want 1", n)
	}
}

func TestClientPostReadsChunkedAndClosingResponses(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusConflict)
		for _, part := range []string{"one ", "two ", "three"} {
			io.WriteString(w, part)
			w.(http.Flusher).Flush() // chunked: the length is not known up front
		}
	})
	c, err := newClient(srv.URL, 4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, path := range []string{"/close", "/close", "/chunked", "/chunked"} {
		status, b, err := c.post(context.Background(), benchTenant, path, "{}")
		if err != nil || status != http.StatusConflict || string(b) != "one two three" {
			t.Fatalf("%s: %d %q %v", path, status, b, err)
		}
	}
	// Each "Connection: close" response ends its connection: the two
	// chunked requests share the third.
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestClientPostResendsOnAConnectionTheServerClosedWhileIdle(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Write([]byte("ok"))
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	closed := make(chan struct{}, 1)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := newClient(srv.URL, 4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := range 2 {
		if status, b, err := c.post(context.Background(), benchTenant, "/", "{}"); err != nil || status != http.StatusOK || string(b) != "ok" {
			t.Fatalf("request %d: %d %q %v", i, status, b, err)
		}
		if i == 0 {
			select { // the server closes the kept connection
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the server did not close the idle connection")
			}
		}
	}
	if n := seen.Load(); n != 2 {
		t.Errorf("the server handled %d requests, want 2", n)
	}
}

func TestClientPostEndsAtItsTimeoutAndWithItsContext(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	defer close(release) // before srv.Close, which waits for the handlers

	c, err := newClient(srv.URL, 4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	_, _, err = c.post(context.Background(), benchTenant, "/", "{}")
	if kind := transportKind(err); kind != "transport: timeout" {
		t.Errorf("after the timeout: %v (%s), want a timeout", err, kind)
	}

	c, err = newClient(srv.URL, 4, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { _, _, err := c.post(ctx, benchTenant, "/", "{}"); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a request whose context ended succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request went on after its context ended")
	}
}

func TestClientPostOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Header.Get("X-Tenant-ID")))
	}))
	defer srv.Close()
	c, err := newClient(srv.URL, 4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.tls.RootCAs = x509.NewCertPool()
	c.tls.RootCAs.AddCert(srv.Certificate())
	c.tls.ServerName = "example.com" // the name httptest's certificate is for
	if status, b, err := c.post(context.Background(), benchTenant, "/", "{}"); err != nil || status != http.StatusOK || string(b) != benchTenant.tenant {
		t.Fatalf("%d %q %v", status, b, err)
	}
}

func TestNewClientRefusesABadBase(t *testing.T) {
	for _, base := range []string{"", "127.0.0.1:8080", "ftp://127.0.0.1", "http://", "http://%zz"} {
		if _, err := newClient(base, 1, time.Second); err == nil {
			t.Errorf("newClient(%q) accepted it", base)
		}
	}
}

// BenchmarkClientPost measures what a request costs the load tool, with this
// client and with net/http's, against an httptest server with a trivial
// handler in the same process: the CPU of the process per request, both
// sides, so the difference between the two is the clients'.
func BenchmarkClientPost(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"0b7c6f5e-5a43-4a0e-9d1e-3f0f4e9f1a11","status":"resolved","resolution":"false_positive"}`))
	}))
	defer srv.Close()
	const path, body = "/v1/anomalies/0b7c6f5e-5a43-4a0e-9d1e-3f0f4e9f1a11/resolve", `{"resolution":"false_positive","notes":"anomalybench"}`
	c, err := newClient(srv.URL, 64, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		post func(ctx context.Context) (int, error)
	}{
		{"client", func(ctx context.Context) (int, error) {
			status, _, err := c.post(ctx, benchTenant, path, body)
			return status, err
		}},
		{"net/http", func(ctx context.Context) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader(body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("X-API-Key", benchTenant.key)
			req.Header.Set("X-Tenant-ID", benchTenant.tenant)
			req.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			defer res.Body.Close()
			_, err = io.ReadAll(res.Body)
			return res.StatusCode, err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 clients on the two cores
			cpu := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if status, err := tc.post(ctx); err != nil || status != http.StatusOK {
						b.Fatal(status, err)
					}
				}
			})
			b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}
