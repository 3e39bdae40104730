package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain must stay free of infrastructure: the standard library and uuid only.
func TestDomainImportsOnlyStdlibAndUUID(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/anomalyd/anomalyd/domain", "github.com/google/uuid":
		default:
			t.Errorf("domain depends on %s; it may import only the standard library and github.com/google/uuid", p)
		}
	}
}
