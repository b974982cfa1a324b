package gitremote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Checkout writes the files of a local bare repository's branch (empty: the
// one its HEAD names) into dst
// (which must not exist yet) and returns the commit it checked out. Git-lfs
// pointer files are replaced by their objects from the repository's LFS
// store (<gitdir>/lfs/objects), where Push keeps them, each checked against
// its sha256 and size. The files appear in dst only when all of them were
// written: they go to a temporary directory beside it that is renamed.
func Checkout(ctx context.Context, remote, branch, dst string) (string, error) {
	gitDir, ok := localPath(remote)
	if !ok {
		return "", fmt.Errorf("checkout %s: only local repositories are supported", redact(remote))
	}
	if _, err := os.Stat(dst); err == nil {
		return "", fmt.Errorf("checkout %s: %s already exists", gitDir, dst)
	}
	repo, err := git.PlainOpen(gitDir)
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	if branch == "" {
		if branch = localHEAD(repo); branch == "" {
			branch = defaultBranch
		}
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return "", fmt.Errorf("checkout %s: branch %s: %w", gitDir, branch, err)
	}
	commit, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	defer os.RemoveAll(tmp)
	err = tree.Files().ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return writeCheckedOut(gitDir, f, filepath.Join(tmp, filepath.FromSlash(f.Name)))
	})
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("checkout %s: %w", gitDir, err)
	}
	return ref.Hash().String(), nil
}

func writeCheckedOut(gitDir string, f *object.File, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer r.Close()
	if f.Size <= maxPointerSize {
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if oid, size, ok := parsePointer(b); ok {
			obj := filepath.Join(gitDir, "lfs", "objects", oid[0:2], oid[2:4], oid)
			got, n, err := hashFile(obj)
			if err != nil {
				return fmt.Errorf("%s: lfs object %s: %w", f.Name, oid, err)
			}
			if got != oid || n != size {
				return fmt.Errorf("%s: lfs object %s is corrupt (sha256 %s, %d bytes; want %d)", f.Name, oid, got, n, size)
			}
			return copyFile(obj, path)
		}
		return os.WriteFile(path, b, 0o644)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return out.Close()
}

// maxPointerSize bounds what can be a git-lfs pointer file (the spec says
// pointers are under 1024 bytes).
const maxPointerSize = 1024

// parsePointer reads a git-lfs pointer file: version, oid sha256:HEX, size.
func parsePointer(b []byte) (oid string, size int64, ok bool) {
	if !bytes.HasPrefix(b, []byte("version https://git-lfs.github.com/spec/v1\n")) {
		return "", 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "oid":
			oid, ok = strings.CutPrefix(v, "sha256:")
		case "size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", 0, false
			}
			size = n
		}
	}
	if !ok || len(oid) != 64 || size < 0 {
		return "", 0, false
	}
	return oid, size, true
}
