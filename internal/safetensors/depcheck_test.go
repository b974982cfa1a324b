package safetensors

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps the package pure Go: the tokenize component
// and Python-free tests use it without libtorch, so it must import neither
// gotch nor cgo (nor anything outside the standard library).
func TestStandardLibraryOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/kfllm/kfllm/internal/safetensors" {
			t.Errorf("imports %s", dep)
		}
	}
	out, err = exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "runtime/cgo" || dep == "C" {
			t.Errorf("depends on cgo (%s)", dep)
		}
	}
}
