package prompt

import (
	"os/exec"
	"strings"
	"testing"
)

// The prompt and tokenizer packages are used by light binaries (tokenize,
// the UI's server side): they must not pull in gotch or cgo.
func TestLightDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{if .CgoFiles}}cgo{{end}}",
		"github.com/kfllm/kfllm/internal/prompt", "github.com/kfllm/kfllm/internal/tokenizer").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, cgo, _ := strings.Cut(line, " ")
		if strings.Contains(pkg, "sugarme/gotch") || (cgo == "cgo" && pkg != "runtime/cgo" && pkg != "net" && pkg != "os/user") {
			t.Errorf("heavy dependency: %s %s", pkg, cgo)
		}
	}
}
