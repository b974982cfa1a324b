package kfllm

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// light lists the packages that must build and test without libtorch: the
// pipeline's ends, the compiler, the UI and the libraries they stand on. A
// package below one of these prefixes that imports gotch (cgo) fails here.
// The commands marked light in components.txt are added by lightPackages;
// TestComponentsAreClassified holds the cgo ones to linking libtorch.
var light = []string{
	"github.com/kfllm/kfllm/internal/hub",
	"github.com/kfllm/kfllm/internal/records",
	"github.com/kfllm/kfllm/internal/shards",
	"github.com/kfllm/kfllm/internal/safetensors",
	"github.com/kfllm/kfllm/internal/gguf",
	"github.com/kfllm/kfllm/internal/tokenizer",
	"github.com/kfllm/kfllm/internal/prompt",
	"github.com/kfllm/kfllm/internal/kfp",
	"github.com/kfllm/kfllm/internal/distjob",
	"github.com/kfllm/kfllm/internal/langsmith",
	"github.com/kfllm/kfllm/internal/gitremote",
	"github.com/kfllm/kfllm/internal/modelcard",
	"github.com/kfllm/kfllm/internal/report",
	"github.com/kfllm/kfllm/internal/squad",
	"github.com/kfllm/kfllm/internal/synth",
	"github.com/kfllm/kfllm/internal/demo",
	"github.com/kfllm/kfllm/demo",
	"github.com/kfllm/kfllm/internal/upload",
	"github.com/kfllm/kfllm/internal/server",
	"github.com/kfllm/kfllm/internal/serve",
	"github.com/kfllm/kfllm/internal/kserve",
	"github.com/kfllm/kfllm/internal/scheduler",
	"github.com/kfllm/kfllm/internal/remote",
	"github.com/kfllm/kfllm/bench/loadtest",
	"github.com/kfllm/kfllm/internal/image",
	"github.com/kfllm/kfllm/build/images",
	"github.com/kfllm/kfllm/build/rehearse",
	"github.com/kfllm/kfllm/internal/rehearse",
	"github.com/kfllm/kfllm/internal/linewriter",
	"github.com/kfllm/kfllm/bench/soak",
}

var heavy = []string{"github.com/sugarme/gotch"}

func TestLightPackagesDoNotImportGotch(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "-test=false",
		"-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !isLight(fields[0]) {
			continue
		}
		checked++
		for _, dep := range fields[1:] {
			for _, h := range heavy {
				if dep == h || strings.HasPrefix(dep, h+"/") {
					t.Errorf("%s depends on %s: keep cgo/libtorch out of it", fields[0], dep)
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("checked %d light packages; the mains fetch, upload, pipeline and ui alone are 4", checked)
	}
}

const module = "github.com/kfllm/kfllm"

// lightPackages is light plus the light commands of components.txt.
func lightPackages() []string {
	out := slices.Clone(light)
	for _, c := range Components() {
		if c.Light {
			out = append(out, module+"/"+c.Dir)
		}
	}
	return out
}

func isLight(pkg string) bool {
	for _, p := range lightPackages() {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// libtorchLayer is the one package that calls gotch's libtch C bindings;
// model and train go through it (its Scope owns and frees every result).
const libtorchLayer = "github.com/kfllm/kfllm/internal/torch"

// libtorchCXX are the packages with C++ of their own against libtorch's
// headers: internal/torch's few declarations, and internal/dist's shim
// over c10d (torch.distributed's C++ core, which gotch does not bind).
var libtorchCXX = []string{libtorchLayer, "github.com/kfllm/kfllm/internal/dist"}

func TestOnlyTorchAndDistLinkLibtorch(t *testing.T) {
	out, err := exec.Command("go", "list", "-e",
		"-f", `{{.ImportPath}} {{len .CXXFiles}} {{join .CgoLDFLAGS " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		pkg := fields[0]
		cxx := fields[1] != "0"
		links := slices.ContainsFunc(fields[2:], func(f string) bool { return strings.HasPrefix(f, "-ltorch") || f == "-lc10" })
		if !cxx && !links {
			continue
		}
		if !slices.Contains(libtorchCXX, pkg) {
			t.Errorf("%s has C++ files or links libtorch itself: keep libtorch's C++ API in %v", pkg, libtorchCXX)
		}
		seen[pkg] = true
	}
	if !seen["github.com/kfllm/kfllm/internal/dist"] || !seen[libtorchLayer] {
		t.Fatalf("found %v: the check looks at the wrong packages", seen)
	}
}

func TestOnlyTorchCallsLibtch(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-test",
		"-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !slices.Contains(fields[1:], "github.com/sugarme/gotch/libtch") {
			continue
		}
		// With -test, the package's test variants list as "pkg [pkg.test]" and "pkg.test".
		pkg := strings.TrimSuffix(fields[0], ".test")
		if pkg == libtorchLayer {
			found = true
			continue
		}
		t.Errorf("%s imports gotch/libtch: call libtorch through %s", pkg, libtorchLayer)
	}
	if !found {
		t.Fatalf("%s does not import gotch/libtch: the check looks at the wrong package", libtorchLayer)
	}
}
