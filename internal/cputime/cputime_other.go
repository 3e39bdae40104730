//go:build !unix

// Package cputime reads the CPU time of the process, which the benchmarks and
// the load tool report per operation.
package cputime

import "time"

// Process returns 0: this platform's CPU time is not read.
func Process() time.Duration { return 0 }
