package report

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps the package light: the pipeline runner and
// the upload step import it, and must not pull in libtorch (gotch, cgo) or
// anything else.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/kfllm/kfllm/internal/report" {
			t.Errorf("internal/report depends on %s; keep it to the standard library", dep)
		}
	}
}
