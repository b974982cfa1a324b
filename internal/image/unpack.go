package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Rootfs returns the root file system of the image in the layout at
// layoutDir, unpacked once per image digest under cacheDir, and the image's
// config.
func Rootfs(layoutDir, cacheDir string) (string, *v1.ConfigFile, error) {
	img, err := Open(layoutDir)
	if err != nil {
		return "", nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", nil, fmt.Errorf("config of %s: %w", layoutDir, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", nil, fmt.Errorf("digest of %s: %w", layoutDir, err)
	}
	dir := filepath.Join(cacheDir, d.Hex)
	root := filepath.Join(dir, "rootfs")
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return root, cfg, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, fmt.Errorf("unpack %s: %w", layoutDir, err)
	}
	if err := Unpack(img, root); err != nil {
		return "", nil, fmt.Errorf("unpack %s: %w", layoutDir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		return "", nil, fmt.Errorf("unpack %s: %w", layoutDir, err)
	}
	return root, cfg, nil
}

// Unpack applies the layers of img in order to the empty or absent
// directory dir, as a container runtime does: owners and modes as in the
// tar (owners only when running as root), OCI whiteouts honoured. Writes
// go through an os.Root, so no entry reaches outside dir, whatever its
// symlinks say.
func Unpack(img v1.Image, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	chown := os.Geteuid() == 0
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("unpack layer %d: %w", i, err)
		}
		err = applyLayer(root, rc, chown)
		rc.Close()
		if err != nil {
			return fmt.Errorf("unpack layer %d: %w", i, err)
		}
	}
	return nil
}

func applyLayer(root *os.Root, r io.Reader, chown bool) error {
	tr := tar.NewReader(r)
	type dirMode struct {
		p string
		m fs.FileMode
	}
	var dirs []dirMode // set after the files, so a read-only dir can be filled
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p, err := cleanPath(h.Name)
		if err != nil {
			continue
		}
		dir, base := path.Split(p)
		if base == ".wh..wh..opq" {
			if err := clearDir(root, strings.TrimSuffix(dir, "/")); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			if err := root.RemoveAll(dir + strings.TrimPrefix(base, ".wh.")); err != nil {
				return err
			}
			continue
		}
		if dir != "" {
			if err := root.MkdirAll(strings.TrimSuffix(dir, "/"), 0o755); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		mode := fs.FileMode(h.Mode).Perm()
		if h.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if st, err := root.Lstat(p); err != nil || !st.IsDir() {
				_ = root.RemoveAll(p)
				if err := root.Mkdir(p, 0o755); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			dirs = append(dirs, dirMode{p, mode})
		case tar.TypeReg:
			_ = root.Remove(p)
			f, err := root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := root.Chmod(p, mode); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case tar.TypeSymlink:
			_ = root.RemoveAll(p)
			if err := root.Symlink(h.Linkname, p); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case tar.TypeLink:
			target, err := cleanPath(h.Linkname)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			_ = root.Remove(p)
			if err := root.Link(target, p); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s: tar type %q not supported", p, h.Typeflag)
		}
		if chown {
			if err := root.Lchown(p, h.Uid, h.Gid); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].p, dirs[i].m); err != nil {
			return fmt.Errorf("%s: %w", dirs[i].p, err)
		}
	}
	return nil
}

func clearDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := root.RemoveAll(path.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}
