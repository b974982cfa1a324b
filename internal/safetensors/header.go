package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, as in the Rust library.
const MaxHeaderSize = 100_000_000

// ErrMalformed is wrapped by every error that reports a fault in a file's
// contents (as opposed to an I/O error reading it).
var ErrMalformed = errors.New("malformed file")

// FormatError reports a fault in a safetensors file or index.
type FormatError struct {
	Path  string // the file
	Fault string // what is wrong with it
}

func (e *FormatError) Error() string {
	return "safetensors: " + e.Path + ": " + e.Fault + ": " + ErrMalformed.Error()
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *FormatError) Unwrap() error { return ErrMalformed }

// fault is a FormatError without its path yet; the caller adds the path.
type fault string

func faultf(format string, args ...any) error { return fault(fmt.Sprintf(format, args...)) }

func (f fault) Error() string { return string(f) }

// withPath turns a fault into a FormatError naming path; other errors are
// wrapped with the path.
func withPath(path string, err error) error {
	var f fault
	if errors.As(err, &f) {
		return &FormatError{Path: path, Fault: string(f)}
	}
	return fmt.Errorf("safetensors: %s: %w", path, err)
}

// TensorInfo describes one tensor in a file. Begin and End are byte offsets
// relative to the start of the data section (just after the header).
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int64
	Begin int64
	End   int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n, _ := numElements(t.Shape)
	return n
}

// header is a parsed and validated safetensors header.
type header struct {
	tensors  map[string]TensorInfo
	metadata map[string]string
	dataLen  int64 // bytes in the data section
}

// parseHeaderPrefix reads the first 8 bytes of a file of size fileSize and
// returns the header length, checking it against the limits.
func parseHeaderPrefix(prefix []byte, fileSize int64) (int64, error) {
	if fileSize < 8 || len(prefix) < 8 {
		return 0, faultf("file is %d bytes, shorter than the 8-byte header length", fileSize)
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	if n > MaxHeaderSize {
		return 0, faultf("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > fileSize-8 {
		return 0, faultf("header length %d exceeds the %d bytes after the length prefix", n, fileSize-8)
	}
	return int64(n), nil
}

// parseHeader validates a JSON header against a data section of dataLen
// bytes: known dtypes, non-negative dims, offsets that match dtype x shape,
// and tensors that tile the data section exactly without gaps or overlaps,
// as the Rust library checks.
func parseHeader(js []byte, dataLen int64) (*header, error) {
	if !utf8.Valid(js) {
		return nil, faultf("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil { // the opening '{'
		return nil, jsonFault("", err)
	} else if tok != json.Delim('{') {
		return nil, faultf("header is not a JSON object")
	}
	h := &header{tensors: map[string]TensorInfo{}, dataLen: dataLen}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, faultf("header is not JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, faultf("header is not a JSON object") // unreachable: json keys are strings
		}
		if seen[name] {
			return nil, faultf("duplicate entry %q in header", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			var md map[string]string
			if err := dec.Decode(&md); err != nil {
				return nil, jsonFault(name, err)
			}
			h.metadata = md
			continue
		}
		info, err := decodeTensor(dec, name)
		if err != nil {
			return nil, err
		}
		if err := checkInfo(info, dataLen); err != nil {
			return nil, err
		}
		h.tensors[name] = info
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonFault("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, faultf("header has data after its JSON object")
		}
		return nil, faultf("header is not JSON: %v", err)
	}
	if err := checkLayout(h.tensors, dataLen); err != nil {
		return nil, err
	}
	return h, nil
}

// decodeTensor decodes one tensor entry as the Rust library does: the
// fields dtype, shape and data_offsets (exact names, each once) are
// required, unknown fields are ignored.
func decodeTensor(dec *json.Decoder, name string) (TensorInfo, error) {
	info := TensorInfo{Name: name}
	if tok, err := dec.Token(); err != nil {
		return info, jsonFault(name, err)
	} else if tok != json.Delim('{') {
		return info, faultf("tensor %q: entry is not a JSON object", name)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return info, jsonFault(name, err)
		}
		field, _ := tok.(string)
		if seen[field] {
			return info, faultf("tensor %q: duplicate field %q", name, field)
		}
		seen[field] = true
		switch field {
		case "dtype":
			var d string
			err = dec.Decode(&d)
			info.DType = DType(d)
		case "shape":
			err = dec.Decode(&info.Shape)
			if err == nil && info.Shape == nil {
				err = faultf("tensor %q: shape is null", name)
			}
		case "data_offsets":
			var off []int64
			err = dec.Decode(&off)
			if err == nil && len(off) != 2 {
				err = faultf("tensor %q: data_offsets must be two numbers, got %d", name, len(off))
			}
			if err == nil {
				info.Begin, info.End = off[0], off[1]
			}
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			var f fault
			if errors.As(err, &f) {
				return info, err
			}
			return info, jsonFault(name, err, field)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return info, jsonFault(name, err)
	}
	for _, field := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[field] {
			return info, faultf("tensor %q: no %s", name, field)
		}
	}
	return info, nil
}

// jsonFault describes an error decoding the value of header entry name;
// encoding/json's own messages name Go types.
func jsonFault(name string, err error, field ...string) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if name == "" {
			return faultf("header is not JSON: it ends early")
		}
		return faultf("header is not JSON: it ends inside %q", name)
	case errors.As(err, &se):
		return faultf("header is not JSON: %v (at byte %d)", se, se.Offset)
	case name == "__metadata__" && errors.As(err, &te):
		return faultf("__metadata__ must map strings to strings, found a JSON %s", te.Value)
	case name == "__metadata__":
		return faultf("__metadata__ must map strings to strings: %v", err)
	case errors.As(err, &te) && len(field) > 0:
		return faultf("tensor %q: field %q holds a JSON %s where the format wants %s", name, field[0], te.Value, wantOf(field[0]))
	}
	return faultf("tensor %q: %v", name, err)
}

func wantOf(field string) string {
	if field == "dtype" {
		return "a string"
	}
	return "integers"
}

// checkInfo checks one tensor's dtype, shape and byte range.
func checkInfo(t TensorInfo, dataLen int64) error {
	if !t.DType.Valid() {
		return faultf("tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return faultf("tensor %q: negative dimension in shape %s", t.Name, fmtShape(t.Shape))
		}
	}
	if t.Begin < 0 || t.End < t.Begin {
		return faultf("tensor %q: invalid offsets [%d,%d)", t.Name, t.Begin, t.End)
	}
	if t.End > dataLen {
		return faultf("tensor %q: offsets [%d,%d) run past the %d-byte data section", t.Name, t.Begin, t.End, dataLen)
	}
	n, ok := byteLen(t.DType, t.Shape)
	if !ok {
		return faultf("tensor %q: %s %s overflows a 64-bit byte count", t.Name, t.DType, fmtShape(t.Shape))
	}
	if t.End-t.Begin != n {
		return faultf("tensor %q: offsets [%d,%d) but %s %s needs %d bytes", t.Name, t.Begin, t.End, t.DType, fmtShape(t.Shape), n)
	}
	return nil
}

// checkLayout checks that the tensors tile [0, dataLen) exactly.
func checkLayout(tensors map[string]TensorInfo, dataLen int64) error {
	infos := make([]TensorInfo, 0, len(tensors))
	for _, t := range tensors {
		infos = append(infos, t)
	}
	slices.SortFunc(infos, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return cmpInt(a.Begin, b.Begin)
		}
		if a.End != b.End {
			return cmpInt(a.End, b.End)
		}
		return strings.Compare(a.Name, b.Name)
	})
	var at int64
	for _, t := range infos {
		switch {
		case t.Begin > at:
			return faultf("gap in data section: bytes [%d,%d) belong to no tensor (next is %q)", at, t.Begin, t.Name)
		case t.Begin < at:
			return faultf("tensor %q: offsets [%d,%d) overlap the previous tensor, which ends at %d", t.Name, t.Begin, t.End, at)
		}
		at = t.End
	}
	if at != dataLen {
		return faultf("data section is %d bytes but the tensors cover %d", dataLen, at)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// numElements multiplies the dims, reporting false on overflow or a
// negative dim.
func numElements(shape []int64) (int64, bool) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// byteLen returns dtype size x product of shape, reporting false on overflow.
func byteLen(d DType, shape []int64) (int64, bool) {
	n, ok := numElements(shape)
	if !ok {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(n), uint64(d.Size()))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// fmtShape writes a shape as the JSON header does, e.g. [3,2].
func fmtShape(shape []int64) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return string(append(b, ']'))
}
