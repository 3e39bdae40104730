package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// TestMain runs the end-to-end tests with the contract check between them and
// the server: every request they send through http.DefaultClient, and every
// response they get, is validated against http/openapi.json, the document the
// binary serves. A handler that answers a status, a header or a field the
// document does not describe fails the run, whichever test happened to cause
// it, so the document cannot drift from the code unnoticed.
//
// The crash test talks to a child process through clients of its own; those
// requests are not checked here (they are the same requests as elsewhere, sent
// to the same handlers, and the child may die mid-response on purpose).
func TestMain(m *testing.M) {
	check, err := newContractCheck(anomalyhttp.OpenAPI)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openapi contract: %v\n", err)
		os.Exit(1)
	}
	http.DefaultClient.Transport = check.wrap(http.DefaultClient.Transport)
	code := m.Run()
	if !check.report(os.Stdout) && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// contractCheck validates requests and responses against an OpenAPI document
// and keeps what it found. It is safe for concurrent use: the end-to-end tests
// send requests in parallel.
type contractCheck struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	// notFound and methodNotAllowed stand for the operations of the requests
	// the document has no route for: their only documented answers.
	notFound, methodNotAllowed *openapi3.Operation

	mu         sync.Mutex
	checked    int // exchanges validated
	refused    int // requests the document calls invalid, all refused as they should be
	unrouted   int // requests to no route of the document, answered 404 or 405
	violations []violation
}

// violation is one way the server departed from the document.
type violation struct {
	method, path, route string
	status              int
	err                 string
}

func newContractCheck(spec []byte) (*contractCheck, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	only := func(status int, name string) *openapi3.Operation {
		op := openapi3.NewOperation()
		op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, doc.Components.Responses[name]))
		return op
	}
	opts := &openapi3filter.Options{
		// The server authenticates; the document only says which
		// credentials exist, and a request without one must get a
		// documented 401, which the response check sees.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// A status the operation does not list is a violation, not a
		// pass: there is no "default" response in the document.
		IncludeResponseStatus: true,
		MultiError:            true,
		SkipSettingDefaults:   true,
	}
	// The reason is enough to act on; the schema and the whole value that
	// the messages carry by default would bury it.
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string { return err.Reason })
	return &contractCheck{
		doc: doc, router: router, opts: opts,
		notFound:         only(http.StatusNotFound, "NotFound"),
		methodNotAllowed: only(http.StatusMethodNotAllowed, "MethodNotAllowed"),
	}, nil
}

// wrap returns a RoundTripper that sends requests through next (nil: the
// default transport) and checks each exchange. The caller still gets the
// request's body sent and the response's body to read, unchanged.
func (c *contractCheck) wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil && req.Body != http.NoBody {
			b, err := io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
			body = b
		}
		res, err := next.RoundTrip(withBody(req, body))
		if err != nil {
			return nil, err
		}
		resBody, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(resBody))
		c.check(withBody(req, body), res, resBody)
		return res, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// withBody returns a copy of req that reads body, so that the transport and
// the validator each read their own.
func withBody(req *http.Request, body []byte) *http.Request {
	out := req.Clone(req.Context())
	if body == nil {
		out.Body = nil
		if req.Body == http.NoBody {
			out.Body = http.NoBody
		}
		return out
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return out
}

// check validates one exchange.
//
// The tests send invalid requests on purpose (bad ids, bodies, headers, query
// parameters, credentials), so a request the document calls invalid is not a
// violation in itself: the document describes valid requests, and the server
// must refuse every request it does not describe. Such a request must get a
// 4xx, and that 4xx must be a documented response. Every response, to a valid
// request or not, must match the document for its operation and status.
//
// A request to a path the document has no route for (or with a method it does
// not list there) is not skipped either: the document has no operation for it
// on purpose, and the server must answer it as an unknown route (404) or
// method (405) with the documented error body. A 2xx there would be a route
// the server serves and the document does not list.
func (c *contractCheck) check(req *http.Request, res *http.Response, body []byte) {
	ctx := context.Background()
	route, params, err := c.router.FindRoute(req)
	unrouted := err != nil
	if unrouted {
		op := c.notFound
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			op = c.methodNotAllowed
		}
		route = &routers.Route{Spec: c.doc, Path: req.URL.Path, PathItem: &openapi3.PathItem{}, Method: req.Method, Operation: op}
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
	var reqErr error
	if !unrouted {
		reqErr = openapi3filter.ValidateRequest(ctx, in)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header, Options: c.opts}
	out.SetBodyBytes(body)
	resErr := openapi3filter.ValidateResponse(ctx, out)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	fail := func(err string) {
		c.violations = append(c.violations, violation{method: req.Method, path: req.URL.RequestURI(), route: route.Path,
			status: res.StatusCode, err: err})
	}
	switch {
	case unrouted:
		c.unrouted++
	case reqErr != nil && (res.StatusCode < 400 || res.StatusCode >= 500):
		fail(fmt.Sprintf("the document calls the request invalid, yet the server answered %d: %v", res.StatusCode, reqErr))
	case reqErr != nil:
		c.refused++
	}
	if resErr != nil {
		fail(fmt.Sprintf("the response does not match the document: %v", resErr))
	}
}

// report prints one line of counts and every violation, grouped by operation
// and status, and reports whether there was none.
func (c *contractCheck) report(w io.Writer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(w, "openapi contract: %d requests and their responses validated against http/openapi.json "+
		"(%d requests the document calls invalid, each refused; %d to no documented route), %d violations\n",
		c.checked, c.refused, c.unrouted, len(c.violations))
	groups := map[string][]violation{}
	for _, v := range c.violations {
		key := fmt.Sprintf("%s %s -> %d", v.method, v.route, v.status)
		groups[key] = append(groups[key], v)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := groups[k]
		fmt.Fprintf(w, "\nVIOLATION %s (%d times), first: %s %s\n  %s\n", k, len(vs), vs[0].method, vs[0].path,
			strings.ReplaceAll(vs[0].err, "\n", "\n  "))
	}
	return len(c.violations) == 0
}

// TestUnknownRoutesAndMethodsAreRefused sends what the document has no
// operation for, with and without a credential: an unknown route is 404 and a
// known route with another method 405, both before authentication, and the
// contract check validates both bodies against the document's error responses.
func TestUnknownRoutesAndMethodsAreRefused(t *testing.T) {
	dir, flags := newEnv(t, "jetstream")
	k := newKeys(t, dir)
	s := start(t, dir, flags...)
	id := "0b6e8f3a-1c2d-4e5f-9a6b-7c8d9e0f1a2b"
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/anomaly", http.StatusNotFound, "NOT_FOUND"},
		{"GET", "/v1/anomalies/" + id + "/audit", http.StatusNotFound, "NOT_FOUND"},
		{"GET", "/v2/anomalies", http.StatusNotFound, "NOT_FOUND"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "INVALID_INPUT"},
		{"DELETE", "/v1/anomalies/" + id, http.StatusMethodNotAllowed, "INVALID_INPUT"},
		{"DELETE", "/readyz", http.StatusMethodNotAllowed, "INVALID_INPUT"},
	} {
		for _, key := range []string{"", k.full} {
			r := s.do(c.method, c.path, key, "acme", "")
			if r.status != c.status || r.body["code"] != c.code {
				t.Errorf("%s %s (credential %v): %d %s, want %d %s", c.method, c.path, key != "", r.status, r.raw, c.status, c.code)
			}
		}
	}
}
