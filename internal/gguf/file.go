package gguf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
)

// ErrMalformed is wrapped by every error about a file that breaks the
// format: truncated, inconsistent or out-of-range values.
var ErrMalformed = errors.New("malformed GGUF")

// ErrUnsupported is wrapped by errors about valid files this package cannot
// handle: version 1, big-endian files, tensor types it cannot dequantize,
// architectures or tokenizers the converter does not know.
var ErrUnsupported = errors.New("unsupported")

// DefaultAlignment is the tensor data alignment when general.alignment is
// absent.
const DefaultAlignment = 32

const (
	maxDims       = 4  // GGML_MAX_DIMS
	maxArrayDepth = 16 // nested arrays deeper than this are refused
)

// TensorInfo describes one tensor. Dims are in ggml order, innermost
// (fastest-varying) first: a Hugging Face [out, in] matrix has Dims [in, out].
type TensorInfo struct {
	Name   string
	Type   Type
	Dims   []uint64
	Offset int64 // absolute offset of the data in the file
	Size   int64 // bytes of data
}

// NumElements is the product of the dimensions.
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d) // checked against overflow when the file was opened
	}
	return n
}

// Shape is the shape in PyTorch order (outermost first), as Hugging Face
// stores the tensor.
func (t TensorInfo) Shape() []int64 {
	s := make([]int64, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int64(d)
	}
	return s
}

// File is an open GGUF file. Its tensor data stays in the page cache (the
// file is memory-mapped), not on the Go heap.
type File struct {
	path      string
	Version   uint32
	Metadata  Metadata
	Tensors   []TensorInfo // in file order
	Alignment int64
	DataStart int64 // where the tensor data section begins

	byName map[string]int
	data   []byte
	unmap  func() error
}

// Open maps path into memory and parses and checks its header, metadata and
// tensor descriptions.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: open: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: open %s: %w", path, err)
	}
	data, unmap, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("gguf: open %s: %w", path, err)
	}
	g, err := parse(data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, fmt.Errorf("gguf: open %s: %w", path, err)
	}
	g.path, g.unmap = path, unmap
	return g, nil
}

// Path is the file's path as given to Open.
func (g *File) Path() string { return g.path }

// Close unmaps the file; slices returned by Data are invalid afterwards.
func (g *File) Close() error {
	if g.unmap == nil {
		return nil
	}
	err := g.unmap()
	g.unmap, g.data = nil, nil
	return err
}

// Tensor returns the description of the named tensor.
func (g *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := g.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return g.Tensors[i], true
}

// Data returns the raw bytes of a tensor: a view of the mapped file, valid
// until Close.
func (g *File) Data(t TensorInfo) []byte {
	return g.data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
}

// Float32s dequantizes the named tensor into dst (grown if too short) and
// returns it, len = the tensor's element count.
func (g *File) Float32s(name string, dst []float32) ([]float32, error) {
	t, ok := g.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: tensor %s: not in %s", name, g.path)
	}
	n := int(t.NumElements())
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if err := Dequantize(dst, t.Type, g.Data(t)); err != nil {
		return nil, fmt.Errorf("gguf: tensor %s: %w", name, err)
	}
	return dst, nil
}

// fault is a parse error at a byte offset.
func fault(off int, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, off, fmt.Sprintf(format, args...))
}

// cursor reads little-endian values from b, checking bounds; the first
// failure sticks in err and later reads return zero values.
type cursor struct {
	b   []byte
	off int
	err error
}

func (c *cursor) take(n uint64, what string) []byte {
	if c.err != nil {
		return nil
	}
	if n > uint64(len(c.b)-c.off) {
		c.err = fault(c.off, "%s needs %d bytes, %d left", what, n, len(c.b)-c.off)
		return nil
	}
	p := c.b[c.off : c.off+int(n)]
	c.off += int(n)
	return p
}

func (c *cursor) u8(what string) uint8 {
	if p := c.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (c *cursor) u16(what string) uint16 {
	if p := c.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (c *cursor) u32(what string) uint32 {
	if p := c.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (c *cursor) u64(what string) uint64 {
	if p := c.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (c *cursor) str(what string) string {
	n := c.u64(what + " length")
	return string(c.take(n, what))
}

func (c *cursor) left() uint64 { return uint64(len(c.b) - c.off) }

// parse reads a whole GGUF file held in data.
func parse(data []byte) (*File, error) {
	c := &cursor{b: data}
	magic := c.take(4, "magic")
	if c.err != nil {
		return nil, c.err
	}
	if string(magic) != "GGUF" {
		return nil, fault(0, "magic %q, want \"GGUF\"", magic)
	}
	g := &File{Version: c.u32("version"), data: data, byName: map[string]int{}}
	switch {
	case c.err != nil:
		return nil, c.err
	case g.Version == 2 || g.Version == 3:
	case g.Version == 1:
		return nil, fmt.Errorf("GGUF version 1: %w", ErrUnsupported)
	case bits.ReverseBytes32(g.Version) <= 3:
		return nil, fmt.Errorf("big-endian GGUF (version %d): %w", bits.ReverseBytes32(g.Version), ErrUnsupported)
	default:
		return nil, fmt.Errorf("GGUF version %d: %w", g.Version, ErrUnsupported)
	}
	nTensors := c.u64("tensor count")
	nKV := c.u64("metadata count")
	if c.err != nil {
		return nil, c.err
	}
	// Each key/value needs at least 12 bytes (key length, value type), each
	// tensor description 24: counts beyond that cannot be real.
	if nKV > c.left()/12 {
		return nil, fault(16, "metadata count %d exceeds what %d bytes can hold", nKV, c.left())
	}
	g.Metadata = Metadata{values: make(map[string]any, nKV)}
	for range nKV {
		at := c.off
		key := c.str("metadata key")
		label := shortQuote(key)
		typ := ValueType(c.u32("value type of " + label))
		v := c.value(typ, label, 0)
		if c.err != nil {
			return nil, c.err
		}
		if _, dup := g.Metadata.values[key]; dup {
			return nil, fault(at, "metadata key %s appears twice", label)
		}
		g.Metadata.values[key] = v
		g.Metadata.keys = append(g.Metadata.keys, key)
	}
	if nTensors > c.left()/24 {
		return nil, fault(c.off, "tensor count %d exceeds what %d bytes can hold", nTensors, c.left())
	}
	g.Alignment = DefaultAlignment
	if v, ok := g.Metadata.values["general.alignment"]; ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("%w: general.alignment %v (%T): want a power of two as uint32", ErrMalformed, v, v)
		}
		g.Alignment = int64(a)
	}
	g.Tensors = make([]TensorInfo, 0, nTensors)
	rel := make([]uint64, 0, nTensors)
	for i := range nTensors {
		at := c.off
		t, off := c.tensorInfo(i)
		if c.err != nil {
			return nil, c.err
		}
		if _, dup := g.byName[t.Name]; dup {
			return nil, fault(at, "tensor %s appears twice", shortQuote(t.Name))
		}
		g.byName[t.Name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, t)
		rel = append(rel, off)
	}
	g.DataStart = alignUp(int64(c.off), g.Alignment)
	for i := range g.Tensors {
		t := &g.Tensors[i]
		if rel[i]%uint64(g.Alignment) != 0 {
			return nil, fmt.Errorf("%w: tensor %s: offset %d is not a multiple of the alignment %d", ErrMalformed, shortQuote(t.Name), rel[i], g.Alignment)
		}
		if rel[i] > uint64(len(data)) || g.DataStart+int64(rel[i]) > int64(len(data))-t.Size {
			return nil, fmt.Errorf("%w: tensor %s: %d bytes at data offset %d run past the end of the file (%d bytes; truncated?)",
				ErrMalformed, shortQuote(t.Name), t.Size, rel[i], len(data))
		}
		t.Offset = g.DataStart + int64(rel[i])
	}
	if err := checkOverlap(g.Tensors); err != nil {
		return nil, err
	}
	return g, nil
}

func (c *cursor) tensorInfo(i uint64) (TensorInfo, uint64) {
	t := TensorInfo{Name: c.str(fmt.Sprintf("tensor %d name", i))}
	label := shortQuote(t.Name)
	nDims := c.u32("dimension count of " + label)
	if c.err == nil && (nDims == 0 || nDims > maxDims) {
		c.err = fault(c.off, "tensor %s has %d dimensions (want 1..%d)", label, nDims, maxDims)
	}
	n := uint64(1)
	for range nDims {
		d := c.u64("dimension of " + label)
		t.Dims = append(t.Dims, d)
		hi, lo := bits.Mul64(n, d)
		if c.err == nil && (hi != 0 || lo > math.MaxInt64) {
			c.err = fault(c.off, "tensor %s: dimensions %v overflow", label, t.Dims)
		}
		n = lo
	}
	t.Type = Type(c.u32("type of " + label))
	off := c.u64("offset of " + label)
	if c.err != nil {
		return t, 0
	}
	info, ok := typeInfo[t.Type]
	if !ok {
		c.err = fmt.Errorf("tensor %s: ggml type %d: %w", label, uint32(t.Type), ErrUnsupported)
		return t, 0
	}
	if t.Dims[0]%uint64(info.block) != 0 {
		c.err = fault(c.off, "tensor %s: row length %d is not a multiple of %s's block of %d", label, t.Dims[0], t.Type, info.block)
		return t, 0
	}
	hi, size := bits.Mul64(n/uint64(info.block), uint64(info.size))
	if hi != 0 || size > math.MaxInt64 {
		c.err = fault(c.off, "tensor %s: size overflows", t.Name)
		return t, 0
	}
	t.Size = int64(size)
	return t, off
}

// checkOverlap reports two tensors whose bytes overlap.
func checkOverlap(ts []TensorInfo) error {
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(ts[a].Offset, ts[b].Offset) })
	for k := 1; k < len(order); k++ {
		a, b := ts[order[k-1]], ts[order[k]]
		if a.Size > 0 && b.Size > 0 && a.Offset+a.Size > b.Offset {
			return fmt.Errorf("%w: tensors %s and %s overlap", ErrMalformed, shortQuote(a.Name), shortQuote(b.Name))
		}
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// shortQuote quotes a name read from a file for an error message, cut to 64
// bytes: a corrupt file can hold a name of any length and any bytes.
func shortQuote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
