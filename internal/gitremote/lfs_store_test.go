package gitremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childPushEnv makes the test binary, started again by
// TestPushLocalKilledLeavesNoTemp, push KFLLM_CHILD_DIR to KFLLM_CHILD_REPO.
const childPushEnv = "KFLLM_GITREMOTE_CHILD_PUSH"

func TestMain(m *testing.M) {
	if os.Getenv(childPushEnv) == "1" {
		_, err := Push(context.Background(), os.Getenv("KFLLM_CHILD_DIR"), Options{Remote: os.Getenv("KFLLM_CHILD_REPO"), LFSThreshold: 1 << 20})
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var oidName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// lfsLeftovers lists the files under <bare>/lfs that are neither a stored
// object (lfs/objects/aa/bb/<oid>) nor the temporary-file lock.
func lfsLeftovers(t *testing.T, bare string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(bare, "lfs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(bare, p)
		if (strings.HasPrefix(rel, filepath.Join("lfs", "objects")) && oidName.MatchString(d.Name())) || d.Name() == "kfllm-lfs.lock" {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// TestPushLocalKilledLeavesNoTemp kills an upload to a local bare repository
// while it copies a large file into the LFS store, then uploads again: the
// second run removes what the killed one left (before, a partial copy of up
// to the model's size stayed in lfs/objects for good) and stores the object
// whole.
func TestPushLocalKilledLeavesNoTemp(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	dir := modelDir(t, big)
	bare := filepath.Join(t.TempDir(), "model.git")
	run(t, "git", "init", "-q", "--bare", "-b", "main", bare)
	killed := false
	for try := 0; try < 5 && !killed; try++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childPushEnv+"=1", "KFLLM_CHILD_DIR="+dir, "KFLLM_CHILD_REPO="+bare)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it as soon as a partial copy exists.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && len(lfsLeftovers(t, bare)) == 0 {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		killed = len(lfsLeftovers(t, bare)) > 0
		if !killed {
			os.RemoveAll(filepath.Join(bare, "lfs"))
		}
	}
	if !killed {
		t.Skip("could not kill the upload while it copied")
	}
	t.Logf("the killed upload left %v", lfsLeftovers(t, bare))

	res, err := Push(context.Background(), dir, Options{Remote: bare, LFSThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if left := lfsLeftovers(t, bare); len(left) > 0 {
		t.Errorf("after the next upload, still left: %v", left)
	}
	sum := sha256.Sum256(big)
	oid := hex.EncodeToString(sum[:])
	got, _, err := hashFile(filepath.Join(bare, "lfs", "objects", oid[:2], oid[2:4], oid))
	if err != nil || got != oid || res.LFSUploaded+res.LFSSkipped != 1 {
		t.Errorf("stored object: sha256 %s, %v (want %s); result %+v", got, err, oid, res)
	}
}

// TestPushLocalErrorLeavesNoTemp: an object that cannot be renamed into
// place fails the upload and leaves no temporary file.
func TestPushLocalErrorLeavesNoTemp(t *testing.T) {
	big := bytes.Repeat([]byte("w"), 4096)
	sum := sha256.Sum256(big)
	oid := hex.EncodeToString(sum[:])
	bare := filepath.Join(t.TempDir(), "model.git")
	run(t, "git", "init", "-q", "--bare", "-b", "main", bare)
	// A directory where the object should go: the rename fails.
	write(t, filepath.Join(bare, "lfs", "objects", oid[:2], oid[2:4], oid, "x"), []byte("in the way"))
	_, err := Push(context.Background(), modelDir(t, big), Options{Remote: bare, LFSThreshold: 1000})
	if err == nil || !strings.Contains(err.Error(), "store lfs object model.safetensors") {
		t.Fatalf("err = %v, want a failed store", err)
	}
	var left []string
	for _, p := range lfsLeftovers(t, bare) {
		if !strings.HasSuffix(p, filepath.Join(oid, "x")) {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("failed upload left %v", left)
	}
	if out := run(t, "git", "-C", bare, "for-each-ref"); out != "" {
		t.Errorf("failed upload still moved refs: %q", out)
	}
}

// TestPushLocalKeepsOthersTemps: a temporary file of an upload still under
// way (it holds the lock) is not removed by another that starts meanwhile.
func TestPushLocalKeepsOthersTemps(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "model.git")
	run(t, "git", "init", "-q", "--bare", "-b", "main", bare)
	tmpDir := filepath.Join(bare, "lfs", "tmp")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockTemps(tmpDir)
	if err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(tmpDir, tempPrefix+"busy")
	write(t, busy, []byte("being written"))
	if _, err := Push(context.Background(), modelDir(t, bytes.Repeat([]byte("w"), 4096)), Options{Remote: bare, LFSThreshold: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(busy); err != nil {
		t.Errorf("a concurrent upload's temporary file was removed: %v", err)
	}
	unlock()
	if _, err := Push(context.Background(), modelDir(t, []byte("w")), Options{Remote: bare}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(busy); err == nil {
		t.Error("a stale temporary file survived an upload with nobody else under way")
	}
}
