package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/renameio/v2"
	"github.com/klauspost/compress/gzip"
)

// layerFormat changes whenever the tar or gzip bytes written for the same
// tree change, so cached layers of an older format are not reused.
const layerFormat = 1

// epoch is the modification time of every file in every layer: layers do
// not change when only the commit (and the image's created time) does, so
// a node keeps the layers it has.
var epoch = time.Unix(0, 0).UTC()

// Cache holds built layers: blobs/sha256/<hex> (the gzip'd tar) and
// keys/<key>.json (its digest, diff id and size), keyed by Tree.Key.
type Cache struct{ Dir string }

type layerMeta struct {
	Digest string `json:"digest"`
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
}

// Layer returns the layer of t, from the cache when a tree with the same key
// was built before, else built now. built reports which.
func (c Cache) Layer(t *Tree) (l v1.Layer, built bool, err error) {
	key, err := t.Key()
	if err != nil {
		return nil, false, err
	}
	keyFile := filepath.Join(c.Dir, "keys", key+".json")
	if b, err := os.ReadFile(keyFile); err == nil {
		var m layerMeta
		if err := json.Unmarshal(b, &m); err == nil {
			if l, err := c.open(m); err == nil {
				return l, false, nil
			}
		}
	}
	m, err := c.write(t)
	if err != nil {
		return nil, false, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o755); err != nil {
		return nil, false, fmt.Errorf("layer cache: %w", err)
	}
	if err := renameio.WriteFile(keyFile, b, 0o644); err != nil {
		return nil, false, fmt.Errorf("layer cache: %w", err)
	}
	l, err = c.open(m)
	return l, true, err
}

func (c Cache) blobPath(h v1.Hash) string {
	return filepath.Join(c.Dir, "blobs", h.Algorithm, h.Hex)
}

func (c Cache) open(m layerMeta) (v1.Layer, error) {
	d, err := v1.NewHash(m.Digest)
	if err != nil {
		return nil, err
	}
	id, err := v1.NewHash(m.DiffID)
	if err != nil {
		return nil, err
	}
	p := c.blobPath(d)
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() != m.Size {
		return nil, fmt.Errorf("cached layer %s has %d bytes, want %d", p, st.Size(), m.Size)
	}
	return &fileLayer{path: p, digest: d, diffID: id, size: m.Size}, nil
}

// write tars and gzips t into the cache, hashing both streams on the way.
func (c Cache) write(t *Tree) (layerMeta, error) {
	dir := filepath.Join(c.Dir, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return layerMeta{}, fmt.Errorf("layer cache: %w", err)
	}
	f, err := os.CreateTemp(dir, "layer-*.tmp")
	if err != nil {
		return layerMeta{}, fmt.Errorf("layer cache: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	zsum, usum := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, zsum)}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return layerMeta{}, err
	}
	if err := writeTar(io.MultiWriter(zw, usum), t); err != nil {
		return layerMeta{}, err
	}
	if err := zw.Close(); err != nil {
		return layerMeta{}, fmt.Errorf("layer gzip: %w", err)
	}
	if err := f.Sync(); err != nil {
		return layerMeta{}, fmt.Errorf("layer cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return layerMeta{}, fmt.Errorf("layer cache: %w", err)
	}
	m := layerMeta{Digest: sumString(zsum), DiffID: sumString(usum), Size: cw.n}
	d, _ := v1.NewHash(m.Digest)
	if err := os.Rename(f.Name(), c.blobPath(d)); err != nil {
		return layerMeta{}, fmt.Errorf("layer cache: %w", err)
	}
	return m, nil
}

func sumString(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// writeTar writes t's entries in path order with fixed times and the
// entries' own owners; no user or group names, no access or change times.
func writeTar(w io.Writer, t *Tree) error {
	tw := tar.NewWriter(w)
	for _, e := range t.Entries() {
		h := &tar.Header{Name: e.Path, Mode: int64(e.Mode.Perm()), Uid: e.UID, Gid: e.GID, ModTime: epoch, Format: tar.FormatPAX}
		if e.Mode&os.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if e.Mode&os.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		if e.Mode&os.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		switch e.Kind {
		case Dir:
			h.Typeflag, h.Name = tar.TypeDir, e.Path+"/"
		case Symlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		case File:
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		default:
			return fmt.Errorf("layer %s: unknown kind %d", e.Path, e.Kind)
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("layer %s: %w", e.Path, err)
		}
		if e.Kind != File {
			continue
		}
		r, err := e.open()
		if err != nil {
			return fmt.Errorf("layer %s: %w", e.Path, err)
		}
		n, err := io.Copy(tw, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", e.Path, err)
		}
		if n != e.Size {
			return fmt.Errorf("layer %s: wrote %d bytes, want %d", e.Path, n, e.Size)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer tar: %w", err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fileLayer is a gzip'd tar layer stored in a file whose digests are known.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("layer %s: %w", l.digest, err)
	}
	return &readCloser{Reader: zr, close: func() error { return errors.Join(zr.Close(), f.Close()) }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
