package http

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// The routes are added hot ones first, which gorilla/mux tries in order. Every
// route must still be reached by its own method and path, and every other
// method on its path must be a 405, whatever the order.
func TestEveryRouteAnswersItsMethodAndRefusesTheOthers(t *testing.T) {
	s := NewServer(Config{Logger: slog.New(slog.DiscardHandler), Metrics: http.NotFoundHandler()})
	methods := map[string][]string{} // path template → its methods
	err := s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		ms, err := route.GetMethods()
		if err != nil {
			return err
		}
		methods[tpl] = append(methods[tpl], ms...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(methods) < 10 {
		t.Fatalf("walked %d path templates, want every route's", len(methods))
	}
	concrete := strings.NewReplacer("{anomalyId}", "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7",
		"{agentId}", "0b6e8f3a-1c2d-4e5f-9a6b-7c8d9e0f1a2b")
	for tpl, ms := range methods {
		path := concrete.Replace(tpl)
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			var m mux.RouteMatch
			matched := s.router.Match(httptest.NewRequest(method, path, nil), &m)
			if !slices.Contains(ms, method) {
				if m.MatchErr != mux.ErrMethodMismatch { // the router's 405 handler
					t.Errorf("%s %s: error %v; want a method mismatch (405)", method, path, m.MatchErr)
				}
				continue
			}
			if !matched || m.MatchErr != nil {
				t.Errorf("%s %s: no route (%v)", method, path, m.MatchErr)
				continue
			}
			if got, _ := m.Route.GetPathTemplate(); got != tpl {
				t.Errorf("%s %s: routed to %s", method, path, got)
			}
		}
	}
}

// BenchmarkRouteMatch measures how long the router takes to find the route of
// the two commands a burst sends.
func BenchmarkRouteMatch(b *testing.B) {
	s := NewServer(Config{Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct{ name, method, path string }{
		{"resolve", "POST", "/v1/anomalies/6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7/resolve"},
		{"report", "POST", "/v1/anomalies"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			b.ReportAllocs()
			for b.Loop() {
				var m mux.RouteMatch
				if !s.router.Match(r, &m) || m.MatchErr != nil {
					b.Fatal("no route")
				}
			}
		})
	}
}
