package gitremote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// errRefMoved means the branch no longer pointed at the commit an update
// was built on: another upload got there first.
var errRefMoved = errors.New("branch moved")

// refLockWait is how long updateRef waits for another writer's lock on the
// ref to go away (a variable for tests).
var refLockWait = 5 * time.Second

// updateRef moves the local repository's ref name from old (ZeroHash: the
// ref must not exist) to new the way git does: it takes <ref>.lock with
// O_EXCL, checks the current value under that lock, writes and fsyncs the
// new value into the lock file and renames it over the ref. Real git and
// other uploads take the same lock, so no update is lost; when the ref no
// longer holds old it returns errRefMoved and changes nothing.
func updateRef(repo *git.Repository, gitDir string, name plumbing.ReferenceName, old, new plumbing.Hash) (err error) {
	path := filepath.Join(gitDir, filepath.FromSlash(name.String()))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	lock := path + ".lock"
	f, err := takeLock(lock)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(lock)
		}
	}()
	cur := plumbing.ZeroHash
	ref, err := repo.Storer.Reference(name) // loose ref, else packed-refs
	switch {
	case err == nil:
		cur = ref.Hash()
	case !errors.Is(err, plumbing.ErrReferenceNotFound):
		return fmt.Errorf("read %s: %w", name, err)
	}
	if cur != old {
		return fmt.Errorf("%s is at %s, not %s: %w", name, short(cur), short(old), errRefMoved)
	}
	if _, err := f.WriteString(new.String() + "\n"); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(lock, path); err != nil {
		return err
	}
	renamed = true
	return syncDir(filepath.Dir(path))
}

// takeLock creates the lock file, waiting up to refLockWait while another
// writer holds it.
func takeLock(lock string) (*os.File, error) {
	deadline := time.Now().Add(refLockWait)
	wait := time.Millisecond
	for {
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) || time.Now().After(deadline) {
			if errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("lock %s: held for more than %s; if no git process is writing to this repository, a killed one left it: remove it", lock, refLockWait)
			}
			return nil, fmt.Errorf("lock %s: %w", lock, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// syncDir fsyncs a directory so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func short(h plumbing.Hash) string {
	if h.IsZero() {
		return "nothing"
	}
	return h.String()[:12]
}
