package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

func chainOf(t *testing.T) []domain.Event {
	t.Helper()
	a, err := domain.Report(reportCmd(domain.SeverityHigh), domain.DefaultPolicy(), meta(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Investigate(domain.InvestigateAnomaly{}, meta(1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive}, meta(2)); err != nil {
		t.Fatal(err)
	}
	return a.Changes()
}

func TestCommandsChainTheirEvents(t *testing.T) {
	evs := chainOf(t)
	prev := ""
	for _, e := range evs {
		if e.PrevHash != prev || e.Hash != domain.HashEvent(e) || len(e.Hash) != 64 {
			t.Fatalf("event %d: prev %q hash %q, want prev %q and its own hash", e.Version, e.PrevHash, e.Hash, prev)
		}
		prev = e.Hash
	}
	if err := domain.VerifyChain(evs); err != nil {
		t.Fatal(err)
	}
}

// pinnedEvent is the event whose hash pins the canonical encoding. Its
// SchemaVersion is zero, an envelope without schema_version: pinnedHashV1 was
// computed before schema versions existed and must stay what it is.
func pinnedEvent() domain.Event {
	return domain.Event{
		ID: uuid.MustParse("6d1f8f3e-3a55-4a8e-9a1e-0c7f4f1d2b3c"), Type: domain.EventAnomalyResolved,
		Stream: domain.AnomalyStream("acme", uuid.MustParse("11111111-1111-4111-8111-111111111111")), Version: 2,
		TenantID: "acme", OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Actor: domain.Actor{ID: "key_1", Kind: domain.ActorAPIKey}, PrevHash: strings.Repeat("ab", 32),
		Data: json.RawMessage(`{ "resolution": "mitigated" }`),
	}
}

const pinnedHashV1 = "147ba2d64ca6069d981f20fbf6ed370c3933bf14de1dd86c4f985fb76c68f478"

// The canonical encoding is part of the log's format: a change to it must be a
// deliberate new version, never an accident.
func TestHashEventIsPinned(t *testing.T) {
	e := pinnedEvent()
	got := domain.HashEvent(e)
	if got != pinnedHashV1 {
		t.Fatalf("HashEvent = %s, want %s", got, pinnedHashV1)
	}
	compact := e
	compact.Data = json.RawMessage(`{"resolution":"mitigated"}`)
	if domain.HashEvent(compact) != got {
		t.Fatal("whitespace in data changed the hash; data is hashed in compact form")
	}

	// The encoding of envelopes with a schema_version (anomalyd.event.v2)
	// covers it, at version 1 too.
	e.SchemaVersion = 1
	const wantV2 = "9f864198e9350e5314d8d0be40b003005d7d267ff2cbd99255637e8b512ac312"
	if got := domain.HashEvent(e); got != wantV2 {
		t.Fatalf("HashEvent at schema version 1 = %s, want %s", got, wantV2)
	}
	e.SchemaVersion = 2
	if got := domain.HashEvent(e); got == wantV2 || got == pinnedHashV1 {
		t.Fatal("the schema version is not covered by the hash")
	}
}

func TestChainBreaks(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]domain.Event) []domain.Event
		at     uint64
		reason string
	}{
		{"AlteredData", func(evs []domain.Event) []domain.Event {
			evs[2].Data = json.RawMessage(strings.Replace(string(evs[2].Data), "false_positive", "agent_revoked", 1))
			return evs
		}, 3, "altered"},
		{"AlteredActor", func(evs []domain.Event) []domain.Event {
			evs[1].Actor.ID = "someone_else"
			return evs
		}, 2, "altered"},
		{"AlteredTime", func(evs []domain.Event) []domain.Event {
			evs[0].OccurredAt = evs[0].OccurredAt.Add(time.Hour)
			return evs
		}, 1, "altered"},
		{"MovedToAnotherStream", func(evs []domain.Event) []domain.Event {
			for i := range evs {
				evs[i].Stream.Tenant, evs[i].TenantID = "globex", "globex"
			}
			return evs
		}, 1, "altered"},
		{"EventRemoved", func(evs []domain.Event) []domain.Event {
			return append(evs[:1], evs[2:]...)
		}, 3, "missing or inserted"},
		{"ForgedEventRehashedButNotChained", func(evs []domain.Event) []domain.Event {
			evs[1].Type = domain.EventAnomalyDismissed
			evs[1].PrevHash = strings.Repeat("0", 64)
			evs[1].Hash = domain.HashEvent(evs[1])
			return evs
		}, 2, "prev_hash"},
		{"RehashedEventBreaksTheNextLink", func(evs []domain.Event) []domain.Event {
			evs[1].Actor.ID = "someone_else"
			evs[1].Hash = domain.HashEvent(evs[1])
			return evs
		}, 3, "prev_hash"},
		{"HashMissing", func(evs []domain.Event) []domain.Event {
			evs[0].Hash = ""
			return evs
		}, 1, "no hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := tt.tamper(chainOf(t))
			err := domain.VerifyChain(evs)
			var brk *domain.ChainBreak
			v := domain.NewChainVerifier()
			for _, e := range evs {
				if err := v.Check(e); err != nil {
					if !errors.As(err, &brk) {
						t.Fatalf("Check error %v is not a *ChainBreak", err)
					}
					break
				}
			}
			if brk == nil || brk.Version != tt.at || !strings.Contains(brk.Reason, tt.reason) {
				t.Fatalf("break = %+v, want at version %d mentioning %q", brk, tt.at, tt.reason)
			}
			if domain.ErrorCode(err) != domain.EINTERNAL {
				t.Fatalf("VerifyChain = %v, want INTERNAL_ERROR", err)
			}
			if _, err := domain.LoadAnomaly(evs); domain.ErrorCode(err) != domain.EINTERNAL {
				t.Fatalf("LoadAnomaly decided on a tampered history: %v", err)
			}
		})
	}
}

func TestChainVerifierFollowsInterleavedStreams(t *testing.T) {
	a := chainOf(t)
	cmd := reportCmd(domain.SeverityLow)
	cmd.AnomalyID = uuid.New()
	other, err := domain.Report(cmd, domain.DefaultPolicy(), meta(5))
	if err != nil {
		t.Fatal(err)
	}
	v := domain.NewChainVerifier()
	for _, e := range []domain.Event{a[0], other.Changes()[0], a[1], a[2]} {
		if err := v.Check(e); err != nil {
			t.Fatal(err)
		}
	}
	again := a[2]
	if err := v.Check(again); err == nil {
		t.Fatal("a replayed event passed")
	}
	if err := v.Check(again); err != nil {
		t.Fatal("a stream already reported broken is reported again")
	}
}
