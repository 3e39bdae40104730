package domain_test

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
)

// restored returns e as a store gives it back: through its envelope and
// RestoreEvent, with decode as the data decoder.
func restored(t *testing.T, e domain.Event, decode domain.DataDecoder) domain.Event {
	t.Helper()
	w, err := domain.EnvelopeOf(e)
	if err != nil {
		t.Fatal(err)
	}
	r, err := domain.RestoreEvent(w, decode)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPayloadDecodedOnceForEveryFold(t *testing.T) {
	var calls atomic.Int32
	counting := func(data []byte, v any) error {
		calls.Add(1)
		return json.Unmarshal(data, v)
	}
	evs := given(t, domain.SeverityHigh, domain.ResolutionMitigated)
	reported, resolved := restored(t, evs[0], counting), restored(t, evs[1], counting)

	// The folds an event passes through on a replay, run at once on copies of
	// the event, as the read models and the effects do.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var s domain.AnomalyState
			var c domain.AgentContainment
			for _, e := range []domain.Event{reported, resolved} {
				if err := s.Apply(e); err != nil {
					t.Error(err)
				}
				if err := c.Apply(e); err != nil {
					t.Error(err)
				}
				if got, ok := domain.AgentOf(e); !ok || got != agentID {
					t.Errorf("AgentOf = %v %v, want %v", got, ok, agentID)
				}
			}
			if s.Status != domain.StatusResolved || c.Status() != domain.ContainmentSuspended {
				t.Errorf("folded to %s, containment %s; want resolved, suspended", s.Status, c.Status())
			}
			d, err := domain.DataOf[domain.AnomalyResolved](resolved)
			if err != nil || d.Resolution != domain.ResolutionMitigated {
				t.Errorf("DataOf = %+v, %v", d, err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("decoder called %d times for two events, want 2", n)
	}
}

func TestPayloadDecodeFailureReachesEveryReader(t *testing.T) {
	broken := errors.New("disk said no")
	fail := func([]byte, any) error { return broken }
	e := restored(t, given(t, domain.SeverityHigh)[0], fail)
	for range 2 {
		var s domain.AnomalyState
		if err := s.Apply(e); domain.ErrorCode(err) != domain.EINTERNAL {
			t.Fatalf("Apply err = %v, want INTERNAL_ERROR", err)
		}
		if _, ok := domain.AgentOf(e); ok {
			t.Fatal("AgentOf found an agent in data that does not decode")
		}
	}
}

// A command's events decode their data, when a fold reads it, with the decoder
// its Meta names: the app gives the stores' codec, so that the command side
// reads a payload as the read models do, and as fast.
func TestRecordedEventsDecodeWithTheMetasDecoder(t *testing.T) {
	var calls atomic.Int32
	m := meta(0)
	m.Decode = func(data []byte, v any) error {
		calls.Add(1)
		return json.Unmarshal(data, v)
	}
	a, err := domain.Report(reportCmd(domain.SeverityHigh), domain.DefaultPolicy(), m)
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("reporting decoded the new event's data %d times with the Meta's decoder, want once (the aggregate's fold)", n)
	}
	d, err := domain.DataOf[domain.AnomalyReported](a.Changes()[0])
	if err != nil || d.AgentID != a.State().AgentID {
		t.Fatalf("DataOf on the recorded event = %+v, %v", d, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a later read decoded the data again (%d decodes)", n)
	}
}
