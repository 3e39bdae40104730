package app

import (
	"testing"

	"github.com/google/uuid"

	"github.com/anomalyd/anomalyd/domain"
)

func TestAnomalyCacheIsBoundedAndNeverGoesBack(t *testing.T) {
	c := newAnomalyCache(8)
	first := domain.AnomalyStream("acme", uuid.New())
	c.put(first, domain.AnomalyState{Version: 2})
	c.put(first, domain.AnomalyState{Version: 1})
	if s, ok := c.get(first); !ok || s.Version != 2 {
		t.Fatalf("get = %+v, %v; an older state replaced a newer one", s, ok)
	}
	for range 100 {
		c.put(domain.AnomalyStream("acme", uuid.New()), domain.AnomalyState{Version: 1})
	}
	if n := c.len(); n != 8 {
		t.Fatalf("%d states kept, want the limit 8", n)
	}
	c.drop(first)
	if _, ok := c.get(first); ok {
		t.Fatal("a dropped state is still kept")
	}
	var off *anomalyCache = newAnomalyCache(0)
	off.put(first, domain.AnomalyState{Version: 1})
	if _, ok := off.get(first); ok || off.len() != 0 {
		t.Fatal("a cache of size 0 keeps states")
	}
}
