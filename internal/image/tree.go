package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Kind is what a tree entry is.
type Kind int

const (
	File Kind = iota
	Dir
	Symlink
)

// Entry is one file, directory or symlink of a layer. Path is relative to
// the image root, slash-separated, without a leading slash.
type Entry struct {
	Path     string
	Kind     Kind
	Mode     fs.FileMode // permission bits only
	UID, GID int
	Link     string // Symlink target
	Data     []byte // File content held in memory, or
	Source   string // a file on disk whose content this is
	Size     int64  // of Data or Source
}

// Tree is the content of one layer, keyed by path.
type Tree struct {
	entries map[string]*Entry
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{entries: map[string]*Entry{}} }

// Len is the number of entries.
func (t *Tree) Len() int { return len(t.entries) }

// Add puts e in the tree, replacing an entry at the same path, and adds the
// parent directories it lacks (root-owned, 0755).
func (t *Tree) Add(e Entry) error {
	p, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	e.Mode &= fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = &Entry{Path: d, Kind: Dir, Mode: 0o755}
		}
	}
	t.entries[p] = &e
	return nil
}

// AddFile adds the file at src as p, its content read when the layer is
// written.
func (t *Tree) AddFile(p, src string, mode fs.FileMode) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("add %s: %s is not a regular file", p, src)
	}
	return t.Add(Entry{Path: p, Kind: File, Mode: mode, Source: src, Size: st.Size()})
}

// AddData adds a file holding data.
func (t *Tree) AddData(p string, data []byte, mode fs.FileMode) error {
	return t.Add(Entry{Path: p, Kind: File, Mode: mode, Data: data, Size: int64(len(data))})
}

// Entries are the entries sorted by path, so parents come before children
// and the same tree always gives the same tar.
func (t *Tree) Entries() []*Entry {
	out := make([]*Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// open returns the content of a File entry.
func (e *Entry) open() (io.ReadCloser, error) {
	if e.Source == "" {
		return io.NopCloser(strings.NewReader(string(e.Data))), nil
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != e.Size {
		f.Close()
		return nil, fmt.Errorf("%s changed size while building (%d, was %d)", e.Source, st.Size(), e.Size)
	}
	return f, nil
}

// Key is a digest of everything the layer's bytes depend on: every entry's
// header fields and content. Equal keys give equal layers, so a layer
// built once is taken from the cache.
func (t *Tree) Key() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "kfllm image layer %d\n", layerFormat)
	for _, e := range t.Entries() {
		sum := ""
		if e.Kind == File {
			r, err := e.open()
			if err != nil {
				return "", fmt.Errorf("layer key %s: %w", e.Path, err)
			}
			c := sha256.New()
			_, err = io.Copy(c, r)
			r.Close()
			if err != nil {
				return "", fmt.Errorf("layer key %s: %w", e.Path, err)
			}
			sum = hex.EncodeToString(c.Sum(nil))
		}
		fmt.Fprintf(h, "%q %d %o %d %d %q %d %s\n", e.Path, e.Kind, e.Mode, e.UID, e.GID, e.Link, e.Size, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func cleanPath(p string) (string, error) {
	c := path.Clean("/" + strings.TrimPrefix(p, "./"))
	if c == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("bad path %q in image", p)
	}
	return c[1:], nil
}
