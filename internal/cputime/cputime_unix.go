//go:build unix

// Package cputime reads the CPU time of the process, which the benchmarks and
// the load tool report per operation: on a shared machine whose speed varies,
// CPU per operation is a steadier measure than wall time, and it counts the
// work of every goroutine, an embedded NATS server's included.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the CPU time, user and system, this process has used, or 0
// when the system does not say.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
