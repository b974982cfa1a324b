package image

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// defaultLibDirs are the directories Debian's ld.so searches after the
// run paths and LD_LIBRARY_PATH, with no ld.so.cache in the image.
var defaultLibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// Unresolved is a DT_NEEDED (or a PT_INTERP) of an ELF file in the image
// that no file of the image provides.
type Unresolved struct {
	File   string // the ELF file, absolute in the image
	Needed string
}

// Linkage is what CheckLinkage found.
type Linkage struct {
	ELFFiles   int          // ELF executables and shared objects looked at
	Needed     int          // DT_NEEDED entries resolved
	Unresolved []Unresolved // besides the allowed ones
	Allowed    []Unresolved // unresolved and allowed (the driver's libcuda.so.1)
}

// CheckLinkage resolves, inside the root file system at root, the
// interpreter and every DT_NEEDED of every ELF file, the way ld.so would:
// DT_RPATH (when there is no DT_RUNPATH), LD_LIBRARY_PATH from env,
// DT_RUNPATH, then Debian's default directories; $ORIGIN expanded,
// symlinks followed inside root. Names in allow (e.g. libcuda.so.1, which
// the NVIDIA container runtime mounts from the host) may stay unresolved.
func CheckLinkage(root string, env []string, allow []string) (Linkage, error) {
	var res Linkage
	var ldPath []string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "LD_LIBRARY_PATH="); ok {
			ldPath = filepath.SplitList(v)
		}
	}
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a] = true
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		inImage := "/" + filepath.ToSlash(strings.TrimPrefix(p, root))
		inImage = path.Clean(inImage)
		f, err := elf.Open(p)
		if err != nil {
			return nil // not ELF
		}
		defer f.Close()
		if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
			return nil
		}
		res.ELFFiles++
		origin := path.Dir(inImage)
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return fmt.Errorf("check %s: %w", inImage, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if _, ok := resolveIn(root, interp); !ok {
				res.Unresolved = append(res.Unresolved, Unresolved{inImage, interp})
			}
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		if err != nil {
			return nil // no dynamic section: static
		}
		rpath, _ := f.DynString(elf.DT_RPATH)
		runpath, _ := f.DynString(elf.DT_RUNPATH)
		var dirs []string
		if len(runpath) == 0 {
			dirs = append(dirs, expandPaths(rpath, origin)...)
		}
		dirs = append(dirs, ldPath...)
		dirs = append(dirs, expandPaths(runpath, origin)...)
		dirs = append(dirs, defaultLibDirs...)
		for _, n := range needed {
			if found(root, dirs, n) {
				res.Needed++
				continue
			}
			u := Unresolved{inImage, n}
			if allowed[n] {
				res.Allowed = append(res.Allowed, u)
			} else {
				res.Unresolved = append(res.Unresolved, u)
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("check linkage in %s: %w", root, err)
	}
	sort.Slice(res.Unresolved, func(i, j int) bool {
		a, b := res.Unresolved[i], res.Unresolved[j]
		return a.File < b.File || a.File == b.File && a.Needed < b.Needed
	})
	return res, nil
}

func expandPaths(entries []string, origin string) []string {
	var out []string
	for _, e := range entries {
		for _, d := range strings.Split(e, ":") {
			if d == "" {
				continue
			}
			d = strings.ReplaceAll(d, "${ORIGIN}", origin)
			d = strings.ReplaceAll(d, "$ORIGIN", origin)
			out = append(out, d)
		}
	}
	return out
}

func found(root string, dirs []string, lib string) bool {
	if strings.Contains(lib, "/") {
		_, ok := resolveIn(root, lib)
		return ok
	}
	for _, d := range dirs {
		if !path.IsAbs(d) {
			continue
		}
		if _, ok := resolveIn(root, path.Join(d, lib)); ok {
			return true
		}
	}
	return false
}

// resolveIn follows p inside root as the container would see it: absolute
// symlinks are relative to root, ".." stops at root. It reports the host
// path of the regular file p names, if any.
func resolveIn(root, p string) (string, bool) {
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		host := filepath.Join(root, filepath.FromSlash(next))
		st, err := os.Lstat(host)
		if err != nil {
			return "", false
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return "", false
			}
			target, err := os.Readlink(host)
			if err != nil {
				return "", false
			}
			if path.IsAbs(target) {
				cur = "/"
			}
			parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
			continue
		}
		cur = next
	}
	host := filepath.Join(root, filepath.FromSlash(cur))
	st, err := os.Stat(host)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return host, true
}

// ErrUnresolved is returned by callers that treat unresolved libraries as
// a failed check.
var ErrUnresolved = errors.New("unresolved shared libraries")
