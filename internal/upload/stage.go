package upload

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stage makes a directory that publishes as dir with the file name (at its
// top) holding content: every other entry of dir is a symlink to it (both
// uploaders follow file symlinks and skip directory ones, as they do in dir
// itself), directories are made afresh, .git is left out (both skip it).
// Nothing is written into dir, which under `pipeline local` is another
// task's cached output. The caller removes the returned directory.
func stage(dir, name string, content []byte) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", dir, err)
	}
	out, err := os.MkdirTemp("", "kfllm-upload-")
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", dir, err)
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return os.Mkdir(filepath.Join(out, rel), 0o755)
		case rel == name:
			return nil
		}
		return os.Symlink(p, filepath.Join(out, rel))
	})
	if err == nil {
		err = os.WriteFile(filepath.Join(out, name), content, 0o644)
	}
	if err != nil {
		os.RemoveAll(out)
		return "", fmt.Errorf("stage %s: %w", dir, err)
	}
	return out, nil
}
