package projections

import "time"

// SetAckTimeout shortens how long p waits for one acknowledgement, so that
// tests can see what happens past it.
func (p *Effects) SetAckTimeout(d time.Duration) { p.ackTimeout = d }
