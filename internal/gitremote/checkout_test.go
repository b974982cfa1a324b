package gitremote

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckoutRoundTrip pushes a model directory, one file above the LFS
// threshold, to a local bare repository and checks it out again: the files
// come back byte for byte, the large one from the LFS store, not as a pointer.
func TestCheckoutRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	big := bytes.Repeat([]byte("weights!"), 4096) // 32 KiB
	files := map[string][]byte{
		"config.json":       []byte(`{"model_type":"llama"}`),
		"model.safetensors": big,
		"sub/notes.txt":     []byte("hello\n"),
	}
	for name, b := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bare := filepath.Join(t.TempDir(), "model.git")
	res, err := Push(ctx, src, Options{Remote: bare, LFSThreshold: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.LFSUploaded != 1 {
		t.Fatalf("pushed %d LFS objects, want 1", res.LFSUploaded)
	}
	dst := filepath.Join(t.TempDir(), "out")
	sha, err := Checkout(ctx, bare, "main", dst)
	if err != nil {
		t.Fatal(err)
	}
	if sha != res.Commit {
		t.Errorf("checked out %s, pushed %s", sha, res.Commit)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes (%q...), want %d", name, len(got), got[:min(len(got), 40)], len(want))
		}
	}

	// An existing destination is refused, not overwritten.
	if _, err := Checkout(ctx, bare, "main", dst); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("checkout into an existing dir: %v", err)
	}
	// A corrupt LFS object is caught, and nothing appears at the destination.
	var oid string
	filepath.WalkDir(filepath.Join(bare, "lfs", "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			oid = p
		}
		return nil
	})
	if err := os.WriteFile(oid, []byte("not the weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst2 := filepath.Join(t.TempDir(), "out2")
	if _, err := Checkout(ctx, bare, "main", dst2); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("checkout with a corrupt LFS object: %v", err)
	}
	if _, err := os.Stat(dst2); !os.IsNotExist(err) {
		t.Errorf("a failed checkout left %s behind", dst2)
	}
	if _, err := Checkout(ctx, "https://example.invalid/x.git", "main", dst2); err == nil {
		t.Error("checkout of an http remote gave no error")
	}
}
