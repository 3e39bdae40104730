package projections_test

import (
	"runtime/debug"
	"testing"

	"github.com/anomalyd/anomalyd/projections"
)

// gcPercent reads the collector's current target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestReplayGCSetsTheTargetAndPutsItBack(t *testing.T) {
	t.Setenv("GOGC", "") // not the operator's: a test runner's GOGC would hide the change
	before := debug.SetGCPercent(70)
	defer debug.SetGCPercent(before)

	restore := projections.ReplayGC()
	if got := gcPercent(); got != projections.ReplayGCPercent {
		t.Errorf("during the replay the target is %d, want %d", got, projections.ReplayGCPercent)
	}
	restore()
	if got := gcPercent(); got != 70 {
		t.Errorf("after the replay the target is %d, want the 70 it was", got)
	}
}

func TestReplayGCLeavesTheOperatorsGOGC(t *testing.T) {
	t.Setenv("GOGC", "50")
	before := debug.SetGCPercent(50)
	defer debug.SetGCPercent(before)

	restore := projections.ReplayGC()
	if got := gcPercent(); got != 50 {
		t.Errorf("with GOGC=50 the replay set the target to %d", got)
	}
	restore()
	if got := gcPercent(); got != 50 {
		t.Errorf("after the replay the target is %d, want 50", got)
	}
}
