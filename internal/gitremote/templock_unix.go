//go:build unix

package gitremote

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// tempLockFile is the file in <gitdir>/lfs/tmp that uploads lock: shared
// while they write temporary files there, exclusive to remove stale ones.
const tempLockFile = "kfllm-lfs.lock" // not tempPrefix: never removed as stale

// lockTemps takes the temporary-file lock of tmpDir for one upload. When no
// other upload holds it, every temporary file there belongs to a dead one
// and is removed. The returned func releases the lock. flock locks go away
// with the process that held them, so a killed upload never blocks the
// next.
func lockTemps(tmpDir string) (func(), error) {
	path := filepath.Join(tmpDir, tempLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		removeStaleTemps(tmpDir)
	case !errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Exclusive -> shared, or wait for shared: other uploads may now write
	// beside this one, and none may clean while it does.
	for {
		err = syscall.Flock(fd, syscall.LOCK_SH)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
