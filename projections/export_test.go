package projections

import (
	"time"

	"github.com/anomalyd/anomalyd/eventstore"
)

// SetAckTimeout shortens how long p waits for one acknowledgement, so that
// tests can see what happens past it.
func (p *Effects) SetAckTimeout(d time.Duration) { p.ackTimeout = d }

// SetMaxPending makes p's queue hold n effects, so that tests can fill it. It
// must be called before the first Apply.
func (p *Effects) SetMaxPending(n int) { p.queue = make(chan Effect, n) }

// RefOf names the event r, as a runner does for the last event it folded.
func RefOf(r eventstore.Recorded) EventRef { return refOf(r) }
