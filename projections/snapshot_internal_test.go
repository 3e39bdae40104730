package projections

import (
	"bytes"
	"testing"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/google/uuid"
)

// The domain records details compacted, but an event stored otherwise (by an
// older build, or another writer) keeps its whitespace in the read models:
// its snapshot line must still be one line, and read back.
func TestSnapshotLineOfDetailsWithNewlines(t *testing.T) {
	v := &AnomalyView{AnomalyState: domain.AnomalyState{
		ID: uuid.New(), Tenant: "acme", Version: 1, Details: []byte("{\n  \"rps\": 950,\n  \"paths\": [\"/a\",\n \"/b\"]\n}"),
	}, Position: 1}
	b := &encodeBatch{lines: []snapshotLine{{Anomaly: v}}, done: make(chan struct{})}
	b.encode()
	if b.err != nil {
		t.Fatal(b.err)
	}
	if n := bytes.Count(b.out, []byte("\n")); n != 1 || !bytes.HasSuffix(b.out, []byte("\n")) {
		t.Fatalf("encoded as %d lines: %q", n, b.out)
	}
	var l snapshotLine
	if err := parseLine(bytes.TrimSuffix(b.out, []byte("\n")), &l); err != nil {
		t.Fatal(err)
	}
	if got := string(l.Anomaly.Details); got != `{"rps":950,"paths":["/a","/b"]}` {
		t.Errorf("details read back %s", got)
	}
}
