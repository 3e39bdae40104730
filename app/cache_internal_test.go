package app

import (
	"math"
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

// The cache holds at most its size in KiB, whatever the details of the states:
// a client choosing large details fills it with fewer states, and a state larger
// than the whole budget is not kept (an older state of its stream goes too).
func TestAnomalyCacheIsBoundedInBytes(t *testing.T) {
	c := newAnomalyCache(8) // 8 KiB
	withDetails := func(version uint64, n int) domain.AnomalyState {
		return domain.AnomalyState{Version: version, Details: make([]byte, n)}
	}
	for range 100 {
		c.put(domain.AnomalyStream("acme", uuid.New()), withDetails(1, 3<<10))
	}
	if n := c.len(); n != 2 {
		t.Fatalf("%d states of 3 KiB details kept in 8 KiB, want 2", n)
	}
	if c.bytes > c.budget {
		t.Fatalf("the kept states count %d bytes, over the budget of %d", c.bytes, c.budget)
	}

	big := domain.AnomalyStream("acme", uuid.New())
	c.put(big, withDetails(1, 100))
	if _, ok := c.get(big); !ok {
		t.Fatal("a small state was not kept")
	}
	c.put(big, withDetails(2, 9<<10))
	if s, ok := c.get(big); ok {
		t.Fatalf("kept version %d of a state whose newer version is larger than the budget", s.Version)
	}

	// Replacing and dropping give the bytes back.
	c = newAnomalyCache(8)
	s := domain.AnomalyStream("acme", uuid.New())
	c.put(s, withDetails(1, 1<<10))
	c.put(s, withDetails(2, 2<<10))
	if want := stateOverhead + 2<<10; c.bytes != want {
		t.Fatalf("after a replace the cache counts %d bytes, want %d", c.bytes, want)
	}
	c.drop(s)
	if c.bytes != 0 || c.len() != 0 {
		t.Fatalf("after the drop the cache counts %d bytes in %d states, want none", c.bytes, c.len())
	}

	// A size whose budget in bytes would overflow keeps states all the same.
	c = newAnomalyCache(math.MaxInt)
	c.put(s, withDetails(1, 1<<10))
	if _, ok := c.get(s); !ok {
		t.Fatal("a cache of the largest size keeps nothing")
	}
}

// A terminal state is not kept, and it forgets the open state it follows; an
// older open state arriving after it (a command that finished late) is kept,
// as it is behind the store like any kept state.
func TestAnomalyCacheKeepsNoTerminalState(t *testing.T) {
	c := newAnomalyCache(8)
	stream := domain.AnomalyStream("acme", uuid.New())
	c.put(stream, domain.AnomalyState{Version: 1, Status: domain.StatusOpen})
	for _, st := range []domain.Status{domain.StatusResolved, domain.StatusDismissed} {
		c.put(stream, domain.AnomalyState{Version: 2, Status: st})
		if s, ok := c.get(stream); ok || c.len() != 0 || c.bytes != 0 {
			t.Fatalf("after a %s state: get = %+v, %v; %d kept, %d bytes; want nothing kept", st, s, ok, c.len(), c.bytes)
		}
		c.put(stream, domain.AnomalyState{Version: 1, Status: domain.StatusInvestigating})
		if _, ok := c.get(stream); !ok {
			t.Fatal("an open state was not kept")
		}
	}
}
