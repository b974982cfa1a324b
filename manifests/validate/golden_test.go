package validate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml from the kustomize bases")

// TestRenderedGolden keeps what `kubectl apply -k manifests/<base>` sends in
// testdata/<base>.yaml, so a change to a base shows up as a reviewable diff
// of the objects. Rewrite with: go test -run TestRenderedGolden -update
func TestRenderedGolden(t *testing.T) {
	for _, base := range []string{"api", "ui", "pipeline-runner", "trainjob-runtime"} {
		got, err := Render(repoPath("manifests", base))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("testdata", base+".yaml")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -run TestRenderedGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("kustomize build manifests/%s differs from %s (-want +got):\n%s", base, p, cmp.Diff(string(want), string(got)))
		}
	}
}
