package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(anomalyhttp.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIIsAValid31Document(t *testing.T) {
	doc := loadOpenAPI(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
}

// TestOpenAPIListsExactlyTheServedRoutes walks the router a server is built
// with and compares its routes, method by method, with the operations of the
// document: a route added without its description, or a description left
// behind by a removed route, fails here.
func TestOpenAPIListsExactlyTheServedRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)

	srv := anomalyhttp.NewServer(anomalyhttp.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: http.NotFoundHandler(), // served only when configured; the document lists it
	})
	router, ok := srv.Handler().(*mux.Router)
	if !ok {
		t.Fatalf("Handler() is a %T, not the *mux.Router this test walks", srv.Handler())
	}
	var served []string
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if route.GetHandler() == nil {
			return nil // a path prefix of a subrouter: its routes come next
		}
		if err != nil {
			t.Errorf("route %s answers every method; register it with Methods so that the document can describe it", tpl)
			return nil
		}
		for _, m := range methods {
			served = append(served, m+" "+tpl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.json", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s is in openapi.json but not served", r)
		}
	}
}

// TestOpenAPIDescribesEveryV1Request checks the conventions every /v1
// operation shares, which are easy to forget in a hand-written document.
func TestOpenAPIDescribesEveryV1Request(t *testing.T) {
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			params := append(slices.Clone(item.Parameters), op.Parameters...)
			has := func(in, header string) bool {
				return slices.ContainsFunc(params, func(p *openapi3.ParameterRef) bool {
					return p.Value.In == in && strings.EqualFold(p.Value.Name, header)
				})
			}
			if !strings.HasPrefix(path, "/v1/") {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: outside /v1 nothing needs a credential; want security []", name)
				}
				continue
			}
			if op.Security == nil || len(*op.Security) != 2 {
				t.Errorf("%s: want the two credentials, each with the scope it needs", name)
			}
			if !has("header", "X-Tenant-ID") {
				t.Errorf("%s: no X-Tenant-ID header parameter", name)
			}
			if method == http.MethodPost && !has("header", "Idempotency-Key") {
				t.Errorf("%s: no Idempotency-Key header parameter", name)
			}
			for _, status := range []int{400, 401, 403, 429, 500} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: no %d response", name, status)
				}
			}
			for status, r := range op.Responses.Map() {
				if r.Value.Headers["X-Trace-Id"] == nil {
					t.Errorf("%s: response %s without X-Trace-Id", name, status)
				}
			}
		}
	}
}

// TestOpenAPIErrorCodesAreTheDomainCodes keeps the error code enum of the
// document equal to the codes the domain has.
func TestOpenAPIErrorCodesAreTheDomainCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	var got []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["code"].Value.Enum {
		got = append(got, v.(string))
	}
	want := []string{domain.EINVALID, domain.EINVALIDID, domain.EUNAUTHORIZED, domain.EFORBIDDEN, domain.ENOTFOUND,
		domain.ECONFLICT, domain.EIDEMPOTENCY, domain.ELIMIT, domain.EINTERNAL}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Error.code enum = %v, want the domain's codes %v", got, want)
	}
}

func TestOpenAPIHandlerServesTheDocument(t *testing.T) {
	rec := httptest.NewRecorder()
	anomalyhttp.OpenAPIHandler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), "GET", "/openapi.json", nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if string(body) != string(anomalyhttp.OpenAPI) || !json.Valid(body) {
		t.Fatal("GET /openapi.json does not serve the embedded document")
	}
}
