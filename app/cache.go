package app

import (
	"sync"

	"github.com/anomalyd/anomalyd/domain"
)

// DefaultCacheSize is how many anomalies a Service keeps the state of by
// default: a burst of reports on a fleet of ten thousand agents, then their
// resolves, is decided without reading the streams again.
const DefaultCacheSize = 16384

// anomalyCache keeps the state of anomalies the service loaded from the store
// (their hash chain checked) or changed itself, so that the next command on
// one decides without reading its stream again. A cached state can only be
// behind the store, never ahead of it: it is stored after a successful append
// or a load, and dropped when an append fails in any way. A command decided on
// a cached state appends with that state's version, so a stream that moved on
// (another instance, an event forged behind the service's back) refuses the
// append, and the command is decided again on a fresh, checked load. Past the
// limit an arbitrary entry is evicted, which costs one read later.
type anomalyCache struct {
	mu     sync.Mutex
	limit  int
	states map[domain.StreamID]domain.AnomalyState
}

func newAnomalyCache(limit int) *anomalyCache {
	if limit <= 0 {
		return nil
	}
	return &anomalyCache{limit: limit, states: make(map[domain.StreamID]domain.AnomalyState)}
}

// get returns the cached state of stream. A nil cache holds nothing.
func (c *anomalyCache) get(stream domain.StreamID) (domain.AnomalyState, bool) {
	if c == nil {
		return domain.AnomalyState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.states[stream]
	return s, ok
}

// put keeps s as the state of stream unless a newer one is kept already (two
// commands finishing out of order).
func (c *anomalyCache) put(stream domain.StreamID, s domain.AnomalyState) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.states[stream]; ok {
		if old.Version < s.Version {
			c.states[stream] = s
		}
		return
	}
	if len(c.states) >= c.limit {
		for k := range c.states {
			delete(c.states, k)
			break
		}
	}
	c.states[stream] = s
}

// drop forgets stream, whose state is no longer known.
func (c *anomalyCache) drop(stream domain.StreamID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.states, stream)
}

// len returns how many states are kept.
func (c *anomalyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states)
}

// CacheStats counts how the commands on anomalies found their state.
type CacheStats struct {
	Hits  uint64 // commands decided on a kept state, without reading the stream
	Loads uint64 // anomalies read from the store and checked for a command (none kept, or decided again)
	Kept  int    // states kept now
}

// CacheStats returns the counts since the service started; with the cache
// off every command loads.
func (s *Service) CacheStats() CacheStats {
	return CacheStats{Hits: s.hits.Load(), Loads: s.loads.Load(), Kept: s.cache.len()}
}
