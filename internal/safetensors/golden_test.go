package safetensors

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The fixtures in testdata/ are written by the Python safetensors library
// (0.8.0) and transformers (4.46.3) through
// scripts/golden/safetensors_fixtures.py; these tests only read them.

var update = flag.Bool("update", false, "rewrite testdata/go_written.safetensors (then rerun scripts/golden/safetensors_fixtures.py)")

type pyTensor struct {
	DType  DType   `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Hex    string  `json:"hex"`
	Values []any   `json:"values"` // numbers, or "inf"/"-inf"/"nan"
	Shard  string  `json:"shard"`
	SHA256 string  `json:"sha256"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// decodeValues turns a tensor's bytes into float64s with this package's
// converters, so that they can be compared with Python's values.
func decodeValues(d DType, b []byte) ([]float64, error) {
	var out []float64
	add := func(n int, f func(int) float64) {
		for i := range n {
			out = append(out, f(i))
		}
	}
	switch d {
	case F32:
		v := Float32s(b)
		add(len(v), func(i int) float64 { return float64(v[i]) })
	case F16:
		v := F16ToFloat32(b)
		add(len(v), func(i int) float64 { return float64(v[i]) })
	case BF16:
		v := BF16ToFloat32(b)
		add(len(v), func(i int) float64 { return float64(v[i]) })
	case F64:
		out = Float64s(b)
	case I32:
		v := Int32s(b)
		add(len(v), func(i int) float64 { return float64(v[i]) })
	case I64:
		v := Int64s(b)
		add(len(v), func(i int) float64 { return float64(v[i]) })
	case I8:
		add(len(b), func(i int) float64 { return float64(int8(b[i])) })
	case U8, BOOL:
		add(len(b), func(i int) float64 { return float64(b[i]) })
	case I16:
		add(len(b)/2, func(i int) float64 { return float64(int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)) })
	default:
		return nil, fmt.Errorf("no decoder for %s", d)
	}
	return out, nil
}

func pyValue(v any) (float64, error) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return float64(i), nil
		}
		return v.Float64()
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case string:
		switch v {
		case "inf":
			return math.Inf(1), nil
		case "-inf":
			return math.Inf(-1), nil
		case "nan":
			return math.NaN(), nil
		}
	}
	return 0, fmt.Errorf("unexpected value %v (%T)", v, v)
}

func sameValues(t *testing.T, name string, got []float64, want []any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	for i := range got {
		w, err := pyValue(want[i])
		if err != nil {
			t.Fatalf("%s[%d]: %v", name, i, err)
		}
		if got[i] != w && !(math.IsNaN(w) && math.IsNaN(got[i])) {
			t.Errorf("%s[%d] = %v, Python has %v", name, i, got[i], w)
		}
	}
}

func TestPythonWrittenDtypes(t *testing.T) {
	var fx struct {
		Metadata map[string]string   `json:"metadata"`
		Tensors  map[string]pyTensor `json:"tensors"`
	}
	readJSON(t, "testdata/py_dtypes.json", &fx)
	f, err := Open("testdata/py_dtypes.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !mapsEqual(f.Metadata(), fx.Metadata) {
		t.Errorf("metadata %q, Python wrote %q", f.Metadata(), fx.Metadata)
	}
	if f.Len() != len(fx.Tensors) {
		t.Errorf("%d tensors, Python wrote %d", f.Len(), len(fx.Tensors))
	}
	var tensors []Tensor
	for name, want := range fx.Tensors {
		info, ok := f.Info(name)
		if !ok {
			t.Errorf("tensor %q missing", name)
			continue
		}
		if info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("%s: %s %v, Python wrote %s %v", name, info.DType, info.Shape, want.DType, want.Shape)
		}
		data, err := f.Data(name)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(data) != want.Hex {
			t.Errorf("%s: bytes %x, Python wrote %s", name, data, want.Hex)
		}
		got, err := decodeValues(info.DType, data)
		if err != nil {
			t.Fatal(err)
		}
		sameValues(t, name, got, want.Values)
		raw, _ := hex.DecodeString(want.Hex)
		tensors = append(tensors, Tensor{Name: name, DType: want.DType, Shape: want.Shape, Data: raw})
	}

	// The same tensors written by us give the same bytes as Python's file.
	path := filepath.Join(t.TempDir(), "ours.safetensors")
	if err := WriteFile(path, tensors, fx.Metadata); err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, path, "testdata/py_dtypes.safetensors")
}

func assertSameFile(t *testing.T, ours, theirs string) {
	t.Helper()
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	if !bytes.Equal(a, b) {
		n := min(len(a), len(b))
		i := 0
		for i < n && a[i] == b[i] {
			i++
		}
		t.Errorf("%s differs from %s at byte %d:\nours   %q\ntheirs %q", ours, theirs, i, a[i:min(len(a), i+80)], b[i:min(len(b), i+80)])
	}
}

func TestRewriteNumpyFileIdentically(t *testing.T) {
	// safetensors.numpy wrote this; reading it and writing it back must
	// reproduce it byte for byte.
	src := "testdata/py_numpy.safetensors"
	f, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []Tensor
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		data, _ := f.Data(name)
		ts = append(ts, Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: data})
	}
	path := filepath.Join(t.TempDir(), "ours.safetensors")
	if err := WriteFile(path, ts, f.Metadata()); err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, path, src)
}

func TestTransformersShardedCheckpoint(t *testing.T) {
	var fx struct {
		TotalSize int64               `json:"total_size"`
		Tensors   map[string]pyTensor `json:"tensors"`
	}
	readJSON(t, "testdata/py_sharded.json", &fx)
	s, err := OpenDir("testdata/py_sharded")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Sharded() || s.Len() != len(fx.Tensors) || s.TotalSize() != fx.TotalSize {
		t.Errorf("sharded %v, %d tensors, total %d; Python: %d tensors, total %d", s.Sharded(), s.Len(), s.TotalSize(), len(fx.Tensors), fx.TotalSize)
	}
	var sum int64
	weightMap := map[string]string{}
	for name, want := range fx.Tensors {
		shard, ok := s.Shard(name)
		if !ok || filepath.Base(shard) != want.Shard {
			t.Errorf("%s: shard %q, want %q", name, shard, want.Shard)
		}
		weightMap[name] = want.Shard
		info, _ := s.Info(name)
		if info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("%s: %s %v, want %s %v", name, info.DType, info.Shape, want.DType, want.Shape)
		}
		data, err := s.Data(name)
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != want.SHA256 {
			t.Errorf("%s: sha256 differs from Python's", name)
		}
		sum += int64(len(data))
	}
	if sum != fx.TotalSize {
		t.Errorf("tensor bytes sum to %d, index total_size is %d", sum, fx.TotalSize)
	}
	// Our index for the same weight map is byte-identical to transformers'.
	dir := t.TempDir()
	if err := WriteIndex(dir, weightMap, fx.TotalSize); err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, filepath.Join(dir, IndexFileName), filepath.Join("testdata/py_sharded", IndexFileName))
}

func TestConversionsMatchTorch(t *testing.T) {
	var fx struct {
		F32  []uint32 `json:"f32_bits"`
		BF16 []uint16 `json:"bf16_bits"`
		F16  []uint16 `json:"f16_bits"`
	}
	readJSON(t, "testdata/conversions.json", &fx)
	if len(fx.F32) < 1000 || len(fx.BF16) != len(fx.F32) || len(fx.F16) != len(fx.F32) {
		t.Fatalf("fixture has %d/%d/%d values", len(fx.F32), len(fx.BF16), len(fx.F16))
	}
	f := make([]float32, len(fx.F32))
	for i, b := range fx.F32 {
		f[i] = math.Float32frombits(b)
	}
	bf := Float32ToBF16(f)
	hf := Float32ToF16(f)
	bad := 0
	for i := range f {
		gotB := uint16(bf[2*i]) | uint16(bf[2*i+1])<<8
		gotH := uint16(hf[2*i]) | uint16(hf[2*i+1])<<8
		if f[i] != f[i] && gotB&0x7f80 == 0x7f80 && gotB&0x7f != 0 {
			gotB = fx.BF16[i] // any NaN will do: torch's own paths disagree (0x7fc0 vs 0xffff)
		}
		if gotB != fx.BF16[i] || gotH != fx.F16[i] {
			if bad++; bad <= 10 {
				t.Errorf("%#08x (%g): bf16 %#04x f16 %#04x, torch %#04x %#04x", fx.F32[i], f[i], gotB, gotH, fx.BF16[i], fx.F16[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d conversions differ from torch", bad, len(f))
	}
}

// goWritten is the file Go writes for Python to read back: several metadata
// keys (whose order Python's writer leaves to a hash map, so byte identity
// is not defined) and every dtype kfllm produces.
func goWritten() ([]Tensor, map[string]string) {
	return []Tensor{
			{Name: "input_ids", DType: I32, Shape: []int64{2, 3}, Data: BytesOfInt32s([]int32{1, 2, 3, -100, 0, 2147483647})},
			{Name: "step", DType: I64, Shape: []int64{}, Data: BytesOfInt64s([]int64{-9223372036854775808})},
			{Name: "w.f32", DType: F32, Shape: []int64{3}, Data: BytesOfFloat32s([]float32{1.5, -0.1, float32(math.Inf(-1))})},
			{Name: "w.bf16", DType: BF16, Shape: []int64{2}, Data: Float32ToBF16([]float32{3.14159, -1e-3})},
			{Name: "w.f16", DType: F16, Shape: []int64{2}, Data: Float32ToF16([]float32{3.14159, 70000})},
			{Name: "w.f64", DType: F64, Shape: []int64{1, 1}, Data: BytesOfFloat64s([]float64{math.E})},
			{Name: "none", DType: F32, Shape: []int64{0}, Data: nil},
			{Name: "mask", DType: BOOL, Shape: []int64{2}, Data: []byte{1, 0}},
		}, map[string]string{
			"format": "pt", "kfllm": "go writer", "note": "é \" \n",
		}
}

func TestGoWrittenReadByPython(t *testing.T) {
	ts, md := goWritten()
	golden := "testdata/go_written.safetensors"
	if *update {
		if err := WriteFile(golden, ts, md); err != nil {
			t.Fatal(err)
		}
	}
	// What we write now is what Python read.
	path := filepath.Join(t.TempDir(), "now.safetensors")
	if err := WriteFile(path, ts, md); err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, path, golden)

	var fx struct {
		Metadata map[string]string `json:"metadata"`
		Numpy    map[string]struct {
			Shape  []int64 `json:"shape"`
			Values []any   `json:"values"`
		} `json:"numpy"`
		Torch map[string]struct {
			Shape  []int64 `json:"shape"`
			Values []any   `json:"values"`
		} `json:"torch"`
	}
	readJSON(t, "testdata/go_written.python.json", &fx)
	if !mapsEqual(fx.Metadata, md) {
		t.Errorf("Python read metadata %q, we wrote %q", fx.Metadata, md)
	}
	for _, tensor := range ts {
		want, err := decodeValues(tensor.DType, tensor.Data)
		if err != nil {
			t.Fatal(err)
		}
		tv, ok := fx.Torch[tensor.Name]
		if !ok {
			t.Errorf("torch did not read %q", tensor.Name)
			continue
		}
		if !slices.Equal(tv.Shape, tensor.Shape) {
			t.Errorf("%s: torch shape %v, we wrote %v", tensor.Name, tv.Shape, tensor.Shape)
		}
		sameValues(t, "torch "+tensor.Name, want, tv.Values)
		if tensor.DType == BF16 {
			continue // numpy has no bfloat16
		}
		nv, ok := fx.Numpy[tensor.Name]
		if !ok {
			t.Errorf("numpy did not read %q", tensor.Name)
			continue
		}
		sameValues(t, "numpy "+tensor.Name, want, nv.Values)
	}
}
