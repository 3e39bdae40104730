package app

import (
	"math"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
)

// DefaultCacheSize is how many anomalies a Service keeps the state of by
// default: a burst of reports on a fleet of tens of thousands of agents, then
// their resolves, is decided without reading the streams again.
const DefaultCacheSize = 65536

// Each kept state counts toward the cache's byte budget, of 1 KiB per state of
// its size, by its estimated size: stateOverhead for the state and its entry
// (616 bytes measured for a resolved anomaly with small details), plus its
// free-text fields and details, which a client chooses (up to 64 KiB of
// details). So states with small details are bounded by count, and the cache
// holds at most its size in KiB however large the details are.
const (
	stateOverhead = 640
	bytesPerState = 1024
)

// anomalyCache keeps the state of anomalies the service loaded from the store
// (their hash chain checked) or changed itself, so that the next command on one
// decides without reading its stream again. A terminal state (resolved or
// dismissed) is not kept: no command can change it, and a command it refuses is
// decided again on a fresh load anyway, so it would only take the place, and
// the collector's time, of an anomaly that can still change. A cached state can
// only be behind the store, never ahead of it: it is stored after a successful
// append or a load, and dropped when an append fails in any way. A command
// decided on a cached state appends with that state's version, so a stream that
// moved on (another instance, an event forged behind the service's back)
// refuses the append, and the command is decided again on a fresh, checked
// load. Past the limit or the byte budget an arbitrary entry is evicted, which
// costs one read later; a state larger than the whole budget is not kept.
type anomalyCache struct {
	mu     sync.Mutex
	limit  int // states
	budget int // bytes, estimated by stateBytes
	bytes  int // of the kept states
	states map[domain.StreamID]domain.AnomalyState
}

func newAnomalyCache(limit int) *anomalyCache {
	if limit <= 0 {
		return nil
	}
	budget := math.MaxInt
	if limit < math.MaxInt/bytesPerState {
		budget = limit * bytesPerState
	}
	return &anomalyCache{limit: limit, budget: budget, states: make(map[domain.StreamID]domain.AnomalyState)}
}

// stateBytes estimates the memory a kept state holds.
func stateBytes(s domain.AnomalyState) int {
	n := stateOverhead + len(s.Details)
	for _, text := range []*string{s.Description, s.Assignee, s.Notes, s.DismissReason} {
		if text != nil {
			n += len(*text)
		}
	}
	return n
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
// commands finishing out of order). A terminal s is not kept, and the older
// state it follows is forgotten.
func (c *anomalyCache) put(stream domain.StreamID, s domain.AnomalyState) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.states[stream]; ok {
		if old.Version >= s.Version {
			return
		}
		c.remove(stream, old)
	}
	if s.Status.Terminal() {
		return
	}
	n := stateBytes(s)
	if n > c.budget {
		return // too large to keep; an older state of the stream went above, as it is behind s
	}
	for len(c.states) > 0 && (len(c.states) >= c.limit || c.bytes+n > c.budget) {
		for stream, old := range c.states {
			c.remove(stream, old)
			break
		}
	}
	c.states[stream] = s
	c.bytes += n
}

// remove forgets stream's kept state s; c.mu is held.
func (c *anomalyCache) remove(stream domain.StreamID, s domain.AnomalyState) {
	delete(c.states, stream)
	c.bytes -= stateBytes(s)
}

// drop forgets stream, whose state is no longer known.
func (c *anomalyCache) drop(stream domain.StreamID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.states[stream]; ok {
		c.remove(stream, s)
	}
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
