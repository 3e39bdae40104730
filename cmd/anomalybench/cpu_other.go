//go:build !unix

package main

import "time"

// selfCPU returns 0: this platform's CPU time is not read.
func selfCPU() time.Duration { return 0 }
