package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sample returns one tensor of every dtype, plus an empty and a scalar one.
func sample(r *rand.Rand) []Tensor {
	var ts []Tensor
	for _, d := range []DType{F32, F16, BF16, F64, I8, I16, I32, I64, U8, BOOL, U16, U32, U64, F8E4M3, F8E5M2} {
		shape := []int64{2, 3}
		data := make([]byte, 6*d.Size())
		for i := range data {
			data[i] = byte(r.IntN(256))
		}
		if d == BOOL {
			for i := range data {
				data[i] &= 1
			}
		}
		ts = append(ts, Tensor{Name: "t." + strings.ToLower(string(d)), DType: d, Shape: shape, Data: data})
	}
	ts = append(ts,
		Tensor{Name: "empty", DType: F32, Shape: []int64{0, 4}, Data: []byte{}},
		Tensor{Name: "scalar", DType: I64, Shape: []int64{}, Data: BytesOfInt64s([]int64{-7})},
	)
	return ts
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	want := sample(rand.New(rand.NewPCG(1, 2)))
	md := map[string]string{"format": "pt", "note": "quote \" back\\slash \n é"}
	if err := WriteFile(path, want, md); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata(); !mapsEqual(got, md) {
		t.Errorf("metadata = %v, want %v", got, md)
	}
	var names []string
	for _, w := range want {
		names = append(names, w.Name)
		info, ok := f.Info(w.Name)
		if !ok {
			t.Fatalf("tensor %q missing", w.Name)
		}
		if info.DType != w.DType || !slices.Equal(info.Shape, w.Shape) {
			t.Errorf("%s: info %s %v, want %s %v", w.Name, info.DType, info.Shape, w.DType, w.Shape)
		}
		got, err := f.Data(w.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w.Data) {
			t.Errorf("%s: data differs", w.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(f.Names(), names) {
		t.Errorf("Names() = %v, want %v", f.Names(), names)
	}
	if _, ok := f.Info("nope"); ok {
		t.Error("Info of a missing tensor reported ok")
	}
	if _, err := f.Data("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Data of a missing tensor: %v, want ErrNotFound", err)
	}
	if v, _ := f.Data("scalar"); Int64s(v)[0] != -7 {
		t.Errorf("scalar = %v", Int64s(v))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Data("scalar"); !errors.Is(err, ErrClosed) {
		t.Errorf("Data after Close: %v, want ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Nothing but the file itself is left in the directory.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(ents))
	}
}

func TestNoMetadataAndNoTensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Len() != 0 || f.Metadata() != nil {
		t.Errorf("got %d tensors, metadata %v", f.Len(), f.Metadata())
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]Tensor{
		"wrong length": {{Name: "a", DType: F32, Shape: []int64{2}, Data: make([]byte, 4)}},
		"duplicate":    {{Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}},
		"bad dtype":    {{Name: "a", DType: "F128", Shape: []int64{1}, Data: make([]byte, 16)}},
		"negative dim": {{Name: "a", DType: U8, Shape: []int64{-1}}},
		"reserved":     {{Name: "__metadata__", DType: U8, Shape: []int64{1}, Data: []byte{1}}},
		"overflow":     {{Name: "a", DType: F64, Shape: []int64{1 << 40, 1 << 40}}},
	}
	for name, ts := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".safetensors")
			if err := WriteFile(path, ts, nil); err == nil {
				t.Fatal("WriteFile succeeded")
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("file exists after a failed write: %v", err)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed writes left %d files behind", len(ents))
	}
}

func TestWriterStreaming(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.safetensors")
	specs := []Spec{{Name: "b", DType: F32, Shape: []int64{1000}}, {Name: "a", DType: I32, Shape: []int64{3}}}
	big := make([]float32, 1000)
	for i := range big {
		big[i] = float32(i) / 3
	}
	w, err := Create(path, specs, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	// Out of layout order, one from a reader.
	if err := w.WriteTensor("a", BytesOfInt32s([]int32{1, -2, 3})); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", BytesOfInt32s([]int32{1, -2, 3})); err == nil {
		t.Error("second write of the same tensor succeeded")
	}
	if err := w.WriteTensor("zz", nil); err == nil {
		t.Error("write of an undeclared tensor succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("file visible before Close")
	}
	if err := w.WriteTensorFrom("b", bytes.NewReader(BytesOfFloat32s(big))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := f.Data("b")
	if !slices.Equal(Float32s(b), big) {
		t.Error("b differs")
	}
	a, _ := f.Data("a")
	if !slices.Equal(Int32s(a), []int32{1, -2, 3}) {
		t.Errorf("a = %v", Int32s(a))
	}
}

func TestWriterFailuresCommitNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.safetensors")
	specs := []Spec{{Name: "a", DType: F32, Shape: []int64{4}}, {Name: "b", DType: U8, Shape: []int64{2}}}
	old := []byte("previous contents")
	os.WriteFile(path, old, 0o644)

	// A missing tensor fails Close.
	w, err := Create(path, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("Close with a tensor unwritten: %v", err)
	}
	// A short reader fails the write and Close.
	w, _ = Create(path, specs, nil)
	if err := w.WriteTensorFrom("a", bytes.NewReader(make([]byte, 15))); err == nil {
		t.Error("short reader accepted")
	}
	w.WriteTensor("b", []byte{1, 2})
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
	// A long reader fails too.
	w, _ = Create(path, specs, nil)
	if err := w.WriteTensorFrom("a", io.MultiReader(bytes.NewReader(make([]byte, 16)), strings.NewReader("x"))); err == nil {
		t.Error("long reader accepted")
	}
	w.Abort()
	// Abort discards.
	w, _ = Create(path, specs, nil)
	w.WriteTensor("b", []byte{1, 2})
	w.Abort()
	w.Abort()

	if got, _ := os.ReadFile(path); !bytes.Equal(got, old) {
		t.Errorf("previous file changed to %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temp files left behind?)", len(ents))
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	s1 := "model-00001-of-00002.safetensors"
	s2 := "model-00002-of-00002.safetensors"
	must(t, WriteFile(filepath.Join(dir, s1), []Tensor{{Name: "a", DType: F32, Shape: []int64{2}, Data: BytesOfFloat32s([]float32{1, 2})}}, map[string]string{"format": "pt"}))
	must(t, WriteFile(filepath.Join(dir, s2), []Tensor{{Name: "b", DType: I64, Shape: []int64{1}, Data: BytesOfInt64s([]int64{9})}}, map[string]string{"format": "pt"}))
	if _, err := OpenDir(dir); !errors.Is(err, ErrNoWeights) {
		t.Fatalf("OpenDir without an index: %v, want ErrNoWeights", err)
	}
	must(t, WriteIndex(dir, map[string]string{"a": s1, "b": s2}, 16))
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(s.Names(), []string{"a", "b"}) || !s.Sharded() || s.TotalSize() != 16 {
		t.Errorf("names %v sharded %v total %d", s.Names(), s.Sharded(), s.TotalSize())
	}
	if p, _ := s.Shard("b"); p != filepath.Join(dir, s2) {
		t.Errorf("Shard(b) = %s", p)
	}
	b, err := s.Data("b")
	if err != nil || Int64s(b)[0] != 9 {
		t.Errorf("b = %v, %v", b, err)
	}
	if s.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", s.Metadata())
	}

	// A weight_map naming a tensor its shard lacks is malformed.
	must(t, WriteIndex(dir, map[string]string{"a": s1, "b": s1}, 16))
	if _, err := OpenDir(dir); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), IndexFileName) {
		t.Errorf("bad weight_map: %v", err)
	}
	// A shard path leaving the directory is refused.
	if err := WriteIndex(dir, map[string]string{"a": "../x.safetensors"}, 0); err == nil {
		t.Error("WriteIndex accepted a path outside the directory")
	}
	os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{"a":"../x.safetensors"}}`), 0o644)
	if _, err := OpenDir(dir); !errors.Is(err, ErrMalformed) {
		t.Errorf("index with ../: %v", err)
	}
	// A missing shard names the shard.
	os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{"a":"gone.safetensors"}}`), 0o644)
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "gone.safetensors") {
		t.Errorf("missing shard: %v", err)
	}
	// A single file wins over the index, as in transformers.
	must(t, WriteFile(filepath.Join(dir, SingleFileName), []Tensor{{Name: "only", DType: U8, Shape: []int64{1}, Data: []byte{5}}}, nil))
	s3, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.Sharded() || !slices.Equal(s3.Names(), []string{"only"}) {
		t.Errorf("single file: sharded %v names %v", s3.Sharded(), s3.Names())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// rawFile builds a file from a header string and a data section.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

type malformedCase struct {
	name, want string
	file       []byte
}

// malformedCases are files Open must refuse, with a phrase the error must
// contain. They also seed FuzzParseHeader.
func malformedCases() []malformedCase {
	good := rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	return []malformedCase{
		{"empty", "shorter than the 8-byte", nil},
		{"truncated prefix", "shorter than the 8-byte", good[:5]},
		{"truncated data", "data section", good[:len(good)-3]},
		{"header length huge", "exceeds the 100000000-byte limit", append(huge, good[8:]...)},
		{"header longer than file", "exceeds the", append(binary.LittleEndian.AppendUint64(nil, 1000), good[8:]...)},
		{"not JSON", "header is not JSON", rawFile(`hello`, nil)},
		{"empty header", "header is not JSON", rawFile(``, nil)},
		{"trailing NUL", "header is not JSON", rawFile("{}\x00", nil)},
		{"field case differs", "no dtype", rawFile(`{"a":{"DTYPE":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"duplicate field", `duplicate field "dtype"`, rawFile(`{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"tensor null", "not a JSON object", rawFile(`{"a":null}`, nil)},
		{"exponent dim", `field "shape"`, rawFile(`{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"three offsets", "data_offsets must be two", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, make([]byte, 1))},
		{"huge offset", `field "data_offsets"`, rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}}`, make([]byte, 1))},
		{"metadata object value", "__metadata__ must map strings to strings", rawFile(`{"__metadata__":{"k":{}}}`, nil)},
		{"bad JSON", "not JSON", rawFile(`{"a":`, nil)},
		{"trailing JSON", "after its JSON object", rawFile(`{} {}`, nil)},
		{"not UTF-8", "UTF-8", rawFile("{\"\xff\":1}", nil)},
		{"offsets out of range", "run past", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4))},
		{"overlapping", "overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))},
		{"gap", "gap in data section", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))},
		{"extra bytes", "tensors cover 4", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 8))},
		{"wrong byte length", `offsets [0,8) but F32 [3] needs 12 bytes`, rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8))},
		{"duplicate name", `duplicate entry "a"`, rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2))},
		{"negative dim", "negative dimension", rawFile(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, nil)},
		{"reversed offsets", "invalid offsets", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, make([]byte, 1))},
		{"overflowing shape", "F32 [4294967296,4294967296] overflows", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil)},
		{"unknown dtype", `unsupported dtype "Q4"`, rawFile(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"missing dtype", "no dtype", rawFile(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"missing shape", "no shape", rawFile(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, make([]byte, 1))},
		{"one offset", "data_offsets must be two", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}`, make([]byte, 1))},
		{"float dim", `tensor "a"`, rawFile(`{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"metadata not strings", "__metadata__", rawFile(`{"__metadata__":{"a":1}}`, nil)},
		{"array header", "not a JSON object", rawFile(`[]`, nil)},
	}
}

func TestMalformed(t *testing.T) {
	cases := malformedCases()
	good := rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("case %d: Open succeeded", i)
			}
			t.Log(err)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks the path or %q", err, c.want)
			}
		})
	}
	// What the Python library (0.8) accepts, we accept too.
	accepted := map[string][]byte{
		"good":            good,
		"leading space":   rawFile(` {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}),
		"unknown field":   rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[{}]}}`, []byte{1}),
		"metadata null":   rawFile(`{"__metadata__":null,"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}),
		"empty at end":    rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}`, []byte{1}),
		"any entry order": rawFile(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}),
	}
	for name, b := range accepted {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".ok.safetensors")
		os.WriteFile(path, b, 0o644)
		f, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		f.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrMalformed) {
		t.Errorf("directory: %v", err)
	}
}

func TestTensorOver4GiB(t *testing.T) {
	// A sparse file with one 5 GiB tensor: no 32-bit length limit anywhere
	// between the header and the view.
	const n = 5 << 30
	path := filepath.Join(t.TempDir(), "big.safetensors")
	hdr := `{"big":{"dtype":"U8","shape":[5368709120],"data_offsets":[0,5368709120]}}`
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write(rawFile(hdr, nil))
	if err := fh.Truncate(int64(8 + len(hdr) + n)); err != nil {
		fh.Close()
		t.Skipf("cannot make a sparse 5 GiB file here: %v", err)
	}
	fh.WriteAt([]byte{42}, int64(8+len(hdr)+n-1))
	fh.Close()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.Data("big")
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != n || d[0] != 0 || d[n-1] != 42 {
		t.Errorf("len %d, first %d, last %d", len(d), d[0], d[len(d)-1])
	}
	if f.DataOffset() != int64(8+len(hdr)) {
		t.Errorf("DataOffset %d", f.DataOffset())
	}
}

func TestConcurrentDataAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	must(t, WriteFile(path, sample(rand.New(rand.NewPCG(3, 4))), nil))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				for _, name := range f.Names() {
					if _, err := f.Data(name); err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	f.Close()
	for range 4 {
		<-done
	}
}
