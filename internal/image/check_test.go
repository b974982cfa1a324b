package image

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCheckLinkage takes a real dynamically linked program of this Debian
// host and the libraries it needs, and checks the resolution the way ld.so
// does it: through an absolute symlink inside the root, by run path with
// $ORIGIN, and with an allowed library left out.
func TestCheckLinkage(t *testing.T) {
	const prog = "/usr/bin/true"
	f, err := elf.Open(prog)
	if err != nil {
		t.Skipf("no ELF %s here: %v", prog, err)
	}
	needed, _ := f.ImportedLibraries()
	f.Close()
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	if len(needed) != 1 || needed[0] != "libc.so.6" {
		t.Skipf("%s needs %v, this test expects just libc.so.6", prog, needed)
	}
	root := t.TempDir()
	copyFile(t, prog, filepath.Join(root, "usr/bin/true"))
	res, err := CheckLinkage(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Unresolved); got != "[{/usr/bin/true /lib64/ld-linux-x86-64.so.2} {/usr/bin/true libc.so.6}]" {
		t.Errorf("with no libraries: unresolved %s", got)
	}
	// libc in the Debian directory, the interpreter as libc6 ships it: an
	// absolute symlink, to be followed inside root, not on the host.
	real, err := filepath.EvalSymlinks(libc)
	if err != nil {
		t.Skip(err)
	}
	copyFile(t, real, filepath.Join(root, "lib/x86_64-linux-gnu/libc.so.6"))
	ld, _ := filepath.EvalSymlinks("/lib64/ld-linux-x86-64.so.2")
	copyFile(t, ld, filepath.Join(root, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
	os.MkdirAll(filepath.Join(root, "lib64"), 0o755)
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	res, err = CheckLinkage(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unresolved) != 0 || res.ELFFiles != 3 {
		t.Errorf("with libc: %d ELF files, unresolved %v", res.ELFFiles, res.Unresolved)
	}
	// Moved out of the default directories, libc is found only through
	// LD_LIBRARY_PATH, or left to the host when allowed.
	os.MkdirAll(filepath.Join(root, "opt/x"), 0o755)
	os.Rename(filepath.Join(root, "lib/x86_64-linux-gnu/libc.so.6"), filepath.Join(root, "opt/x/libc.so.6"))
	if res, _ = CheckLinkage(root, nil, nil); len(res.Unresolved) == 0 {
		t.Error("libc outside the search path resolved")
	}
	if res, _ = CheckLinkage(root, []string{"LD_LIBRARY_PATH=/opt/x"}, nil); len(res.Unresolved) != 0 {
		t.Errorf("LD_LIBRARY_PATH: unresolved %v", res.Unresolved)
	}
	if res, _ = CheckLinkage(root, nil, []string{"libc.so.6"}); len(res.Unresolved) != 0 || len(res.Allowed) == 0 {
		t.Errorf("allowed: unresolved %v, allowed %v", res.Unresolved, res.Allowed)
	}
}

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a"), 0o755)
	os.Symlink("../../../../etc/passwd", filepath.Join(root, "a/up"))
	os.Symlink("/etc/hostname", filepath.Join(root, "a/abs"))
	for _, p := range []string{"/a/up", "/a/abs"} {
		if host, ok := resolveIn(root, p); ok {
			t.Errorf("%s resolved to the host's %s", p, host)
		}
	}
}
