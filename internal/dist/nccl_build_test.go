package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The NCCL variant (build tag nccl, the CUDA images) compiles, links
// against libtorch 2.1.0's CUDA build and reaches ProcessGroupNCCL at run
// time: scripts/check_nccl_build.sh --dist-only. It runs where the CUDA
// libtorch is already installed (make images with IMAGE_FLAVOR=cuda, or
// the script itself, put it in the cache); elsewhere, such as CI, it
// skips rather than download 2.6 GB of wheels.
func TestNCCLBuildScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds internal/dist with the CUDA libtorch")
	}
	if NCCLBuilt() {
		t.Skip("this is the nccl build already")
	}
	cache := os.Getenv("KFLLM_CACHE")
	if cache == "" {
		home, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache directory:", err)
		}
		cache = filepath.Join(home, "kfllm")
	}
	if _, err := os.Stat(filepath.Join(cache, "libtorch-2.1.0-cuda", ".complete")); err != nil {
		t.Skipf("libtorch 2.1.0 cuda is not in %s (scripts/libtorch.sh cuda, or run scripts/check_nccl_build.sh)", cache)
	}
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "check_nccl_build.sh"), "--dist-only")
	cmd.Env = append(os.Environ(), "KFLLM_CACHE="+cache)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("scripts/check_nccl_build.sh --dist-only: %v", err)
	}
}
