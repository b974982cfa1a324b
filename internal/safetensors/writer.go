package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Spec declares a tensor to be written by a Writer.
type Spec struct {
	Name  string
	DType DType
	Shape []int64
}

// Tensor is a tensor held in memory: its raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// Writer streams a safetensors file: the header is written by Create, then
// each tensor's bytes by WriteTensor or WriteTensorFrom, in any order. The
// file appears at its path only when Close succeeds; until then it is a
// temporary file in the same directory. A Writer is not safe for concurrent
// use.
type Writer struct {
	path    string
	tmp     *os.File
	dataOff int64
	infos   map[string]TensorInfo
	written map[string]bool
	err     error // first write error; makes Close fail
	done    bool
}

// Create starts writing a safetensors file at path holding the tensors
// described by specs, with the given __metadata__ (may be nil). Tensors are
// laid out as the Python library lays them out: by dtype (wider first, in
// the Rust library's order), then by name.
func Create(path string, specs []Spec, metadata map[string]string) (*Writer, error) {
	infos, js, err := layout(specs, metadata)
	if err != nil {
		return nil, fmt.Errorf("safetensors: create %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("safetensors: create %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; a model file is meant to be shared.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("safetensors: create %s: %w", path, err)
	}
	w := &Writer{path: path, tmp: tmp, dataOff: 8 + int64(len(js)), infos: infos, written: map[string]bool{}}
	var total int64
	for _, t := range infos {
		total = max(total, t.End)
	}
	buf := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(js)), uint64(len(js)))
	buf = append(buf, js...)
	if _, err := tmp.Write(buf); err != nil {
		w.Abort()
		return nil, fmt.Errorf("safetensors: write header %s: %w", path, err)
	}
	// Size the file up front so tensors can be written at their offsets in
	// any order; unwritten tensors are caught by Close.
	if err := tmp.Truncate(w.dataOff + total); err != nil {
		w.Abort()
		return nil, fmt.Errorf("safetensors: size %s: %w", path, err)
	}
	return w, nil
}

// Infos returns the layout of the file being written, in data order.
func (w *Writer) Infos() []TensorInfo {
	out := make([]TensorInfo, 0, len(w.infos))
	for _, t := range w.infos {
		out = append(out, cloneInfo(t))
	}
	slices.SortFunc(out, func(a, b TensorInfo) int {
		if c := cmpInt(a.Begin, b.Begin); c != 0 {
			return c
		}
		return cmpInt(a.End, b.End)
	})
	return out
}

func (w *Writer) slot(name string, n int64) (TensorInfo, error) {
	if w.done {
		return TensorInfo{}, fmt.Errorf("safetensors: write %s: writer is closed", w.path)
	}
	if w.err != nil {
		return TensorInfo{}, w.err
	}
	t, ok := w.infos[name]
	if !ok {
		return t, fmt.Errorf("safetensors: write %s: tensor %q was not declared to Create", w.path, name)
	}
	if w.written[name] {
		return t, fmt.Errorf("safetensors: write %s: tensor %q written twice", w.path, name)
	}
	if n >= 0 && n != t.End-t.Begin {
		return t, fmt.Errorf("safetensors: write %s: tensor %q: got %d bytes, %s %s needs %d", w.path, name, n, t.DType, fmtShape(t.Shape), t.End-t.Begin)
	}
	return t, nil
}

// WriteTensor writes the named tensor's raw little-endian bytes, which must
// be exactly dtype size x number of elements long.
func (w *Writer) WriteTensor(name string, data []byte) error {
	t, err := w.slot(name, int64(len(data)))
	if err != nil {
		return err
	}
	if _, err := w.tmp.WriteAt(data, w.dataOff+t.Begin); err != nil {
		w.err = fmt.Errorf("safetensors: write %s: tensor %q: %w", w.path, name, err)
		return w.err
	}
	w.written[name] = true
	return nil
}

// WriteTensorFrom copies the named tensor's bytes from r, which must yield
// exactly the tensor's byte length, without holding them all in memory.
func (w *Writer) WriteTensorFrom(name string, r io.Reader) error {
	t, err := w.slot(name, -1)
	if err != nil {
		return err
	}
	want := t.End - t.Begin
	ow := io.NewOffsetWriter(w.tmp, w.dataOff+t.Begin)
	n, err := io.CopyN(ow, r, want)
	if err == nil {
		// r must be exhausted: one more byte means the tensor is too long.
		var one [1]byte
		if k, _ := io.ReadFull(r, one[:]); k > 0 {
			err = fmt.Errorf("reader has more than %d bytes", want)
		}
	} else if errors.Is(err, io.EOF) {
		err = fmt.Errorf("reader ended after %d of %d bytes", n, want)
	}
	if err != nil {
		// The slot may be partly written; the file cannot be committed.
		w.err = fmt.Errorf("safetensors: write %s: tensor %q: %w", w.path, name, err)
		return w.err
	}
	w.written[name] = true
	return nil
}

// Close checks that every declared tensor was written, syncs the file and
// renames it into place. After a failed Close nothing is left at the path
// (or the previous file there is untouched).
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	if w.err != nil {
		err := w.err
		w.Abort()
		return err
	}
	var missing []string
	for name := range w.infos {
		if !w.written[name] {
			missing = append(missing, strconv.Quote(name))
		}
	}
	if len(missing) > 0 {
		w.Abort()
		slices.Sort(missing)
		return fmt.Errorf("safetensors: write %s: tensors never written: %s", w.path, strings.Join(missing, ", "))
	}
	tmpName := w.tmp.Name()
	if err := w.tmp.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("safetensors: sync %s: %w", w.path, err)
	}
	if err := w.tmp.Close(); err != nil {
		w.done = true
		os.Remove(tmpName)
		return fmt.Errorf("safetensors: close %s: %w", w.path, err)
	}
	w.done = true
	if err := commit(tmpName, w.path); err != nil {
		return err
	}
	return nil
}

// commit renames tmp to path and syncs the directory so the rename survives
// a crash.
func commit(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("safetensors: commit %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // best effort: some filesystems refuse to sync a directory
		d.Close()
	}
	return nil
}

// Abort discards the temporary file. It is safe to call after Close, and
// does nothing then.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	name := w.tmp.Name()
	w.tmp.Close()
	os.Remove(name)
}

// WriteFile writes tensors and metadata to a safetensors file at path,
// atomically (see Writer).
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	specs := make([]Spec, len(tensors))
	for i, t := range tensors {
		specs[i] = Spec{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := Create(path, specs, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// layout validates specs and returns their offsets and the padded JSON
// header, both as the Python library (safetensors 0.8) produces them.
func layout(specs []Spec, metadata map[string]string) (map[string]TensorInfo, []byte, error) {
	infos := make(map[string]TensorInfo, len(specs))
	order := make([]TensorInfo, 0, len(specs))
	for _, s := range specs {
		if s.Name == "__metadata__" {
			return nil, nil, errors.New(`"__metadata__" cannot be a tensor name`)
		}
		if !utf8.ValidString(s.Name) {
			return nil, nil, fmt.Errorf("tensor name %q is not valid UTF-8", s.Name)
		}
		if _, dup := infos[s.Name]; dup {
			return nil, nil, fmt.Errorf("tensor %q declared twice", s.Name)
		}
		if !s.DType.Valid() {
			return nil, nil, fmt.Errorf("tensor %q: unsupported dtype %q", s.Name, s.DType)
		}
		n, ok := byteLen(s.DType, s.Shape)
		if !ok {
			return nil, nil, fmt.Errorf("tensor %q: invalid shape %s for %s (negative or overflowing)", s.Name, fmtShape(s.Shape), s.DType)
		}
		t := TensorInfo{Name: s.Name, DType: s.DType, Shape: slices.Clone(s.Shape), End: n}
		infos[s.Name] = t
		order = append(order, t)
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("metadata %q is not valid UTF-8", k)
		}
	}
	slices.SortFunc(order, func(a, b TensorInfo) int {
		if a.DType != b.DType {
			return b.DType.rank() - a.DType.rank()
		}
		return strings.Compare(a.Name, b.Name)
	})
	var off int64
	js := make([]byte, 0, 64+96*len(order))
	js = append(js, '{')
	if metadata != nil {
		// The Python library writes metadata in hash order; sorted keys keep
		// ours deterministic (and identical when there is one key).
		js = append(js, `"__metadata__":{`...)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				js = append(js, ',')
			}
			js = appendJSONString(js, k)
			js = append(js, ':')
			js = appendJSONString(js, metadata[k])
		}
		js = append(js, '}')
	}
	for i, t := range order {
		n := t.End
		if off > maxInt64-n {
			return nil, nil, errors.New("total size overflows 64 bits")
		}
		t.Begin, t.End = off, off+n
		off = t.End
		infos[t.Name] = t
		if i > 0 || metadata != nil {
			js = append(js, ',')
		}
		js = appendJSONString(js, t.Name)
		js = append(js, `:{"dtype":"`...)
		js = append(js, t.DType...)
		js = append(js, `","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				js = append(js, ',')
			}
			js = strconv.AppendInt(js, d, 10)
		}
		js = append(js, `],"data_offsets":[`...)
		js = strconv.AppendInt(js, t.Begin, 10)
		js = append(js, ',')
		js = strconv.AppendInt(js, t.End, 10)
		js = append(js, "]}"...)
	}
	js = append(js, '}')
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	if len(js) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header would be %d bytes, over the %d-byte limit", len(js), MaxHeaderSize)
	}
	return infos, js, nil
}

const maxInt64 = 1<<63 - 1

// appendJSONString quotes s as serde_json does: only '"', '\\' and control
// characters are escaped; everything else, including non-ASCII, is written
// as UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}
