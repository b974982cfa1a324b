package validate

import (
	"os"
	"path/filepath"
	"testing"
)

// repo is the root of the kfllm work tree (this module lives in
// manifests/validate).
var repo = func() string {
	abs, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return abs
}()

const modulePath = "github.com/kfllm/kfllm"

func repoPath(p ...string) string { return filepath.Join(append([]string{repo}, p...)...) }

// entrypoints are the components' image ENTRYPOINTs (internal/image).
func entrypoints(t *testing.T) map[string]string {
	t.Helper()
	return Entrypoints()
}

// envReads scans the serving and ui binaries' sources. A binary that reads
// nothing yet (a stub main) is left out, with a note in the test log.
func envReads(t *testing.T) map[string]EnvSet {
	t.Helper()
	out := map[string]EnvSet{}
	for comp, dir := range map[string]string{"serving": "serving", "ui": "ui"} {
		s, err := ScanEnv(repo, modulePath, dir)
		if err != nil {
			t.Fatal(err)
		}
		if s.Empty() {
			t.Logf("%s/ reads no environment variables yet (still a stub?): env names set for %s are not checked", dir, comp)
			continue
		}
		out[comp] = s
	}
	return out
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		panic("manifests/validate must sit two levels below the kfllm repository root: " + err.Error())
	}
	os.Exit(m.Run())
}
