package safetensors

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
)

// File is an open safetensors file whose tensor bytes are mapped into memory
// read-only. Its methods are safe for concurrent use. As with any mapped
// file, truncating the file on disk while it is open makes reads of the lost
// pages crash the program; replace files by renaming, as Writer does.
type File struct {
	path    string
	h       *header
	dataOff int64 // offset of the data section in the file

	mu      sync.RWMutex
	data    []byte // the data section; nil after Close
	unmap   func() error
	release func(begin, end int64) error // drops data[begin:end]'s pages from the resident set; nil: nothing to drop
	closed  bool
}

// Open opens the safetensors file at path, validates its header fully (see
// ErrMalformed) and maps its data section into memory.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: open: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, &FormatError{Path: path, Fault: "not a regular file"}
	}
	h, dataOff, err := readHeader(fh, st.Size())
	if err != nil {
		return nil, withPath(path, err)
	}
	m, err := mapData(fh, dataOff, h.dataLen)
	if err != nil {
		return nil, withPath(path, fmt.Errorf("map data: %w", err))
	}
	return &File{path: path, h: h, dataOff: dataOff, data: m.data, unmap: m.unmap, release: m.release}, nil
}

// mapping is a file's data section in memory (mapData, per platform): the
// bytes, the function that unmaps them (nil when there is nothing to
// unmap) and the one that drops data[begin:end]'s pages from the process's
// resident set (nil where there is nothing to drop).
type mapping struct {
	data    []byte
	unmap   func() error
	release func(begin, end int64) error
}

// readHeader reads and validates the header of a file of the given size,
// returning it and the offset of the data section.
func readHeader(r io.ReaderAt, size int64) (*header, int64, error) {
	var prefix [8]byte
	if size >= 8 {
		if k, err := r.ReadAt(prefix[:], 0); k < len(prefix) {
			return nil, 0, fmt.Errorf("read header length: %w", err)
		}
	}
	n, err := parseHeaderPrefix(prefix[:], size)
	if err != nil {
		return nil, 0, err
	}
	js := make([]byte, n)
	if k, err := r.ReadAt(js, 8); k < len(js) {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	h, err := parseHeader(js, size-8-n)
	if err != nil {
		return nil, 0, err
	}
	return h, 8 + n, nil
}

// ReadInfo reads and validates only the header of the file at path, without
// mapping its data: the tensors (sorted by name) and the __metadata__.
func ReadInfo(path string) ([]TensorInfo, map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: open: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	h, _, err := readHeader(fh, st.Size())
	if err != nil {
		return nil, nil, withPath(path, err)
	}
	infos := make([]TensorInfo, 0, len(h.tensors))
	for _, name := range slices.Sorted(maps.Keys(h.tensors)) {
		infos = append(infos, cloneInfo(h.tensors[name]))
	}
	return infos, maps.Clone(h.metadata), nil
}

// DataOffset returns the file offset of the data section: tensor t's bytes
// are at [DataOffset()+t.Begin, DataOffset()+t.End) in the file.
func (f *File) DataOffset() int64 { return f.dataOff }

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return slices.Sorted(maps.Keys(f.h.tensors)) }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.h.tensors) }

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.h.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	return cloneInfo(t), true
}

func cloneInfo(t TensorInfo) TensorInfo {
	t.Shape = slices.Clone(t.Shape)
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	return t
}

// ErrClosed is returned by Data after Close.
var ErrClosed = errors.New("safetensors: file is closed")

// ErrNotFound is wrapped by Data for a name the file does not hold.
var ErrNotFound = errors.New("no such tensor")

// Data returns the named tensor's raw little-endian bytes. The slice is a
// read-only view into the mapped file, valid until Close; writing to it or
// reading it after Close crashes the program. Copy what must outlive Close.
func (f *File) Data(name string) ([]byte, error) {
	t, ok := f.h.tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("%w: %s", ErrClosed, f.path)
	}
	return f.data[t.Begin:t.End:t.End], nil
}

// Release tells the kernel that the process is done with the named
// tensor's bytes for now: the mapped pages that hold them leave the
// process's resident set (they stay in the page cache). A loader that
// copies each tensor out (into libtorch, say) and then releases it never
// holds the file's pages and all the copies at once, so its peak RSS is
// the copies plus one tensor rather than the copies plus the file. Views
// from Data stay valid: reading one again faults its pages back in, from
// the page cache. Pages shared with a neighbouring tensor are dropped too
// and come back the same way. On platforms without mmap it does nothing.
func (f *File) Release(name string) error {
	t, ok := f.h.tensors[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return fmt.Errorf("%w: %s", ErrClosed, f.path)
	}
	if f.release == nil || t.End == t.Begin {
		return nil
	}
	if err := f.release(t.Begin, t.End); err != nil {
		return fmt.Errorf("safetensors: %s: release tensor %q: %w", f.path, name, err)
	}
	return nil
}

// Metadata returns a copy of the header's __metadata__ (nil if absent).
func (f *File) Metadata() map[string]string { return maps.Clone(f.h.metadata) }

// Close unmaps the file. Slices returned by Data must not be used afterwards.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.unmap != nil {
		if err := f.unmap(); err != nil {
			return fmt.Errorf("safetensors: close %s: %w", f.path, err)
		}
	}
	return nil
}
