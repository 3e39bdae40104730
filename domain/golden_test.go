package domain_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files of the current event schema versions under testdata/events")

const goldenDir = "testdata/events"

// goldenFiles is every golden file there must be: each event type at its
// current schema version, and the older versions the domain still reads. A new
// schema version adds its file here; an older one's file is never removed.
var goldenFiles = []string{
	"agent.restored.v1.json",
	"agent.revoked.v1.json",
	"anomaly.dismissed.v1.json",
	"anomaly.investigation_started.v1.json",
	"anomaly.reported.v1.json", // older: before schema versions, written by hand, never by -update
	"anomaly.reported.v2.json",
	"anomaly.resolved.v1.json",
	"policy.changed.v1.json",
}

// goldenEvents records one event of every type through the real commands, with
// fixed ids, times and actors, so that its stored form is the same on every run.
func goldenEvents(t *testing.T) []domain.Event {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := uuid.MustParse("33333333-3333-4333-8333-333333333333")
	cmd := reportCmd(domain.SeverityHigh)
	cmd.Description, cmd.ReferencesAnomalyID = strp("900 requests per second from one key"), &ref
	a, err := domain.Report(cmd, domain.DefaultPolicy(), meta(0))
	must(err)
	must(a.Investigate(domain.InvestigateAnomaly{Assignee: strp("erin@example.com"), Notes: strp("triage started")}, meta(1)))
	must(a.Resolve(domain.ResolveAnomaly{Resolution: domain.ResolutionMitigated, Notes: strp("rotated the key"),
		ResolvedBy: strp("bob@example.com")}, meta(2)))

	other := reportCmd(domain.SeverityMedium)
	other.AnomalyID = uuid.MustParse("44444444-4444-4444-8444-444444444444")
	b, err := domain.Report(other, domain.DefaultPolicy(), meta(3))
	must(err)
	must(b.Dismiss(domain.DismissAnomaly{Reason: "duplicate of a known load test"}, meta(4)))

	var c domain.AgentContainment
	for _, e := range a.Changes() {
		must(c.Apply(e))
	}
	agent, err := domain.LoadAgent(tenant, agentID, nil)
	must(err)
	must(agent.Restore(&c, domain.RestoreAgent{Notes: strp("key rotated, agent back in service")}, meta(5)))
	must(agent.Revoke(&c, domain.RevokeAgent{Reason: "compromised for good"}, meta(6)))

	p, err := domain.LoadPolicy(tenant, nil)
	must(err)
	keysFile := meta(7)
	keysFile.Actor = domain.Actor{ID: "keys-file", Kind: domain.ActorSystem}
	changed, err := p.Change(domain.Policy{domain.SeverityMedium: domain.ContainmentSuspended}, "/etc/anomalyd/keys.json", keysFile)
	must(err)
	if !changed {
		t.Fatal("the policy did not change")
	}

	var evs []domain.Event
	evs = append(evs, a.Changes()...)
	evs = append(evs, b.Changes()[1])
	evs = append(evs, agent.Changes()...)
	evs = append(evs, p.Changes()...)
	return evs
}

func goldenName(typ string, version int) string { return fmt.Sprintf("%s.v%d.json", typ, version) }

// indented returns a stored event as its golden file holds it.
func indented(t *testing.T, stored []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, stored, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// TestGoldenEvents pins the wire format of every event type at its current
// schema version: a change to what MarshalEvent writes must show here, and
// then be a new schema version with an upcasting step, not an edit of a file.
func TestGoldenEvents(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range goldenEvents(t) {
		name := goldenName(e.Type, e.SchemaVersion)
		seen[e.Type] = true
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			if !slices.Contains(goldenFiles, name) {
				t.Fatalf("%s is recorded at schema version %d, which has no golden file in goldenFiles", e.Type, e.SchemaVersion)
			}
			b, err := eventstore.MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			got := indented(t, b)
			path := filepath.Join(goldenDir, name)
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./domain -run TestGoldenEvents -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("MarshalEvent wrote\n%s\nwant (%s)\n%s", got, path, want)
			}
		})
	}
	for _, typ := range []string{
		domain.EventAnomalyReported, domain.EventAnomalyInvestigationStarted, domain.EventAnomalyResolved,
		domain.EventAnomalyDismissed, domain.EventAgentRestored, domain.EventAgentRevoked, domain.EventPolicyChanged,
	} {
		if !seen[typ] {
			t.Errorf("no golden event of type %s", typ)
		}
	}
}

// TestGoldenFilesReadBack reads every golden file, older versions included, as a
// store returns it: it decodes at its type's current schema version, verifies
// against its stored hash, and is written back as it was stored.
func TestGoldenFilesReadBack(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	if !slices.Equal(names, goldenFiles) {
		t.Fatalf("golden files %v, want %v", names, goldenFiles)
	}
	current := map[string]int{}
	for _, e := range goldenEvents(t) {
		current[e.Type] = e.SchemaVersion
	}
	for _, name := range goldenFiles {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(goldenDir, name))
			if err != nil {
				t.Fatal(err)
			}
			var stored bytes.Buffer
			if err := json.Compact(&stored, raw); err != nil {
				t.Fatal(err)
			}
			e, err := eventstore.UnmarshalEvent(stored.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			var env struct {
				SchemaVersion *int `json:"schema_version"`
			}
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatal(err)
			}
			version := 1 // an envelope without schema_version is version 1
			if env.SchemaVersion != nil {
				version = *env.SchemaVersion
			}
			if want := goldenName(e.Type, version); name != want {
				t.Fatalf("file holds %s at schema version %d: it should be named %s", e.Type, version, want)
			}
			if e.SchemaVersion != current[e.Type] {
				t.Fatalf("read at schema version %d, want the current %d", e.SchemaVersion, current[e.Type])
			}
			if got := domain.HashEvent(e); got != e.Hash {
				t.Fatalf("HashEvent = %s, want the stored hash %s", got, e.Hash)
			}
			again, err := eventstore.MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, stored.Bytes()) {
				t.Fatalf("written back as\n%s\nwant it as stored\n%s", again, stored.Bytes())
			}
		})
	}
}
