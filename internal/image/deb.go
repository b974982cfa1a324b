package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Package is one line of the Debian lock file (build/debian.lock):
// name, version, architecture and the sha256 of the .deb.
type Package struct {
	Name, Version, Arch, SHA256 string
}

// File is the name apt-get download gives the .deb (an epoch's ':' is
// written %3a).
func (p Package) File() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// ReadLock reads a lock file: "NAME VERSION ARCH SHA256" lines, # comments.
func ReadLock(p string) ([]Package, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	var out []Package
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("read lock %s:%d: want NAME VERSION ARCH SHA256, got %q", p, n, line)
		}
		if _, err := hex.DecodeString(f[3]); err != nil || len(f[3]) != 64 {
			return nil, fmt.Errorf("read lock %s:%d: %q is not a sha256", p, n, f[3])
		}
		out = append(out, Package{Name: f[0], Version: f[1], Arch: f[2], SHA256: f[3]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read lock %s: no packages", p)
	}
	return out, nil
}

// Verify checks that the .deb at p has the lock's sha256.
func (pk Package) Verify(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("verify %s: %w", pk.Name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify %s: %w", pk.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pk.SHA256 {
		return fmt.Errorf("verify %s: %s has sha256 %s, the lock says %s", pk.Name, p, got, pk.SHA256)
	}
	return nil
}

// dropped are the parts of a package an image does not need: manuals,
// documentation (but not the copyright files), lintian overrides.
func dropped(p string) bool {
	switch {
	case strings.HasPrefix(p, "usr/share/doc/"):
		return path.Base(p) != "copyright" && strings.Count(p, "/") >= 3
	case strings.HasPrefix(p, "usr/share/man/"), strings.HasPrefix(p, "usr/share/info/"),
		strings.HasPrefix(p, "usr/share/lintian/"), strings.HasPrefix(p, "usr/share/bug/"):
		return true
	}
	return false
}

// AddDeb adds the files of the verified .deb at p to t (root-owned, as
// dpkg installs them) and its control file as var/lib/dpkg/status.d/NAME,
// where image scanners look for the packages of a distroless image.
func AddDeb(t *Tree, pk Package, p string) error {
	if err := pk.Verify(p); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	members, err := readAr(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	var data, control []byte
	var dataName, controlName string
	for name, b := range members {
		switch {
		case strings.HasPrefix(name, "data.tar"):
			data, dataName = b, name
		case strings.HasPrefix(name, "control.tar"):
			control, controlName = b, name
		}
	}
	if data == nil || control == nil {
		return fmt.Errorf("read %s: no data.tar or control.tar member", p)
	}
	ctl, err := tarFiles(control, controlName, func(n string) bool { return n == "control" })
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if err := t.AddData("var/lib/dpkg/status.d/"+pk.Name, ctl["control"], 0o644); err != nil {
		return err
	}
	r, err := decompress(dataName, data)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	tr := tar.NewReader(r)
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s %s: %w", p, dataName, err)
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			if strings.Trim(h.Name, "./") == "" {
				continue // the archive's root "./"
			}
			return fmt.Errorf("read %s: %w", p, err)
		}
		if dropped(name) {
			continue
		}
		mode := fs.FileMode(h.Mode).Perm()
		if h.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = t.Add(Entry{Path: name, Kind: Dir, Mode: mode, UID: h.Uid, GID: h.Gid})
		case tar.TypeSymlink:
			err = t.Add(Entry{Path: name, Kind: Symlink, Mode: 0o777, Link: h.Linkname, UID: h.Uid, GID: h.Gid})
		case tar.TypeReg:
			var b []byte
			b, err = io.ReadAll(tr)
			if err == nil {
				err = t.Add(Entry{Path: name, Kind: File, Mode: mode, UID: h.Uid, GID: h.Gid, Data: b, Size: int64(len(b))})
			}
		case tar.TypeLink:
			links[name] = h.Linkname
		default:
			return fmt.Errorf("read %s: %s has tar type %q", p, h.Name, h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	// Hard links become copies of their target: a layer of regular files is
	// simpler to check and the few dpkg ships are small.
	names := make([]string, 0, len(links))
	for n := range links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		target, _ := cleanPath(links[n])
		e, ok := t.entries[target]
		if !ok || e.Kind != File {
			return fmt.Errorf("read %s: hard link %s to %s, which is not a file of the package", p, n, links[n])
		}
		c := *e
		c.Path = n
		if err := t.Add(c); err != nil {
			return err
		}
	}
	return nil
}

// CABundle adds etc/ssl/certs/ca-certificates.crt, the bundle Go's
// crypto/x509 reads, made as update-ca-certificates would: the
// certificates under usr/share/ca-certificates in path order.
func CABundle(t *Tree) error {
	var buf bytes.Buffer
	for _, e := range t.Entries() {
		if e.Kind == File && strings.HasPrefix(e.Path, "usr/share/ca-certificates/") && strings.HasSuffix(e.Path, ".crt") {
			buf.Write(e.Data)
			if !bytes.HasSuffix(e.Data, []byte("\n")) {
				buf.WriteByte('\n')
			}
		}
	}
	if buf.Len() == 0 {
		return errors.New("ca bundle: no certificates under usr/share/ca-certificates (is ca-certificates in the lock?)")
	}
	return t.AddData("etc/ssl/certs/ca-certificates.crt", buf.Bytes(), 0o644)
}

// readAr reads the members of an ar archive (the .deb container).
func readAr(r io.Reader) (map[string][]byte, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return nil, errors.New("not an ar archive")
	}
	out := map[string][]byte{}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("ar header: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 || size > 1<<31 {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("ar member %q: %w", name, err)
		}
		if size%2 == 1 {
			if _, err := br.ReadByte(); err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
		}
		out[name] = b
	}
}

func decompress(name string, b []byte) (io.Reader, error) {
	switch filepath.Ext(name) {
	case ".xz":
		return xz.NewReader(bytes.NewReader(b))
	case ".zst":
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case ".gz":
		return gzip.NewReader(bytes.NewReader(b))
	case ".tar":
		return bytes.NewReader(b), nil
	}
	return nil, fmt.Errorf("%s: unknown compression", name)
}

// tarFiles returns the regular files of a compressed tar whose cleaned
// names keep accepts.
func tarFiles(b []byte, name string, keep func(string) bool) (map[string][]byte, error) {
	r, err := decompress(name, b)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		n := strings.TrimPrefix(path.Clean(h.Name), "./")
		if h.Typeflag == tar.TypeReg && keep(n) {
			if out[n], err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}
