//go:build unix

package projections_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system) the whole process has used:
// on a shared machine whose speed varies, CPU per event is a steadier measure
// than wall time, and it counts the work of every goroutine, the embedded
// NATS server's included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
