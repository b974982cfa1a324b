package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// values.gguf is written by scripts/golden/gguf_fixture.py with gguf-py's
// GGUFWriter: one metadata key of each value type, nested arrays, and two
// small tensors, aligned to 64 bytes by general.alignment.
func TestOpenValues(t *testing.T) {
	g, err := Open(filepath.Join("testdata", "values.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Version != 3 || g.Alignment != 64 || g.DataStart%64 != 0 {
		t.Errorf("version %d alignment %d data at %d, want 3, 64 and a multiple of 64", g.Version, g.Alignment, g.DataStart)
	}
	want := map[string]any{
		"general.architecture": "none",
		"general.alignment":    uint32(64),
		"test.u8":              uint8(200),
		"test.i8":              int8(-100),
		"test.u16":             uint16(60000),
		"test.i16":             int16(-30000),
		"test.u32":             uint32(4000000000),
		"test.i32":             int32(-2000000000),
		"test.f32":             float32(0.1),
		"test.u64":             uint64(1<<63 + 5),
		"test.i64":             int64(-(1 << 62)),
		"test.f64":             0.1,
		"test.bool":            true,
		"test.str":             "héllo",
		"test.arr_i32":         []int32{1, -2, 3},
		"test.arr_nested":      []any{[]int32{1, 2}, []int32{3}},
		"test.arr_str":         []string{"a", "", "東京"},
	}
	got := map[string]any{}
	for _, k := range g.Metadata.Keys() {
		got[k], _ = g.Metadata.Get(k)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}

	if n, err := g.Metadata.Int("test.u32"); err != nil || n != 4000000000 {
		t.Errorf("Int(test.u32) = %d, %v", n, err)
	}
	if f, err := g.Metadata.Float("test.f32"); err != nil || f != 0.1 {
		t.Errorf("Float(test.f32) = %v, %v; want 0.1 (shortest decimal of the float32)", f, err)
	}
	if _, err := g.Metadata.Int("test.u64"); !errors.Is(err, ErrMalformed) {
		t.Errorf("Int of 2^63+5: %v, want ErrMalformed (does not fit an int)", err)
	}
	if _, err := g.Metadata.String("test.u8"); !errors.Is(err, ErrMalformed) {
		t.Errorf("String of a uint8: %v, want ErrMalformed", err)
	}
	if _, err := g.Metadata.String("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("String of a missing key: %v, want ErrMissing", err)
	}

	for name, want := range map[string][]float32{
		"f32": {0, 1, 2, 3, 4, 5},
		"f16": {1.5, -2, 65504, float32(math.Ldexp(1, -24))}, // 6e-8 rounds to the smallest subnormal half
	} {
		got, err := g.Float32s(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
	ti, _ := g.Tensor("f32")
	if d := cmp.Diff([]int64{2, 3}, ti.Shape()); d != "" {
		t.Errorf("f32 shape (-want +got):\n%s", d)
	}
}

func TestHalfToFloat(t *testing.T) {
	for h, want := range map[uint16]float32{
		0x0000: 0, 0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: float32(math.Ldexp(1, -24)),
		0x03ff: float32(math.Ldexp(1023, -24)), 0x0400: float32(math.Ldexp(1, -14)),
		0x7c00: float32(math.Inf(1)), 0xfc00: float32(math.Inf(-1)),
	} {
		if got := halfToFloat(h); got != want {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
	if got := halfToFloat(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("halfToFloat(0x8000) = %v, want -0", got)
	}
	if got := halfToFloat(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat(0x7e00) = %v, want NaN", got)
	}
}

func TestDequantizeUnsupported(t *testing.T) {
	err := Dequantize(make([]float32, 256), Q4_K, make([]byte, 144))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Q4_K: %v, want ErrUnsupported", err)
	}
	if err := Dequantize(make([]float32, 32), Q4_0, make([]byte, 17)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short Q4_0 block: %v, want ErrMalformed", err)
	}
}

// Every prefix of a valid file that cuts into its header or tensor data (the
// writer pads the end) is refused with ErrMalformed, no panic; and so is a
// file whose counts and lengths claim more than is there.
func TestTruncatedAndCorrupt(t *testing.T) {
	for _, name := range []string{"values.gguf", "llama_tiny.gguf"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		whole, err := parse(data)
		if err != nil {
			t.Fatalf("%s whole: %v", name, err)
		}
		end := whole.DataStart
		for _, ti := range whole.Tensors {
			end = max(end, ti.Offset+ti.Size)
		}
		step := max(1, int(end)/3000)
		for n := 0; n < int(end); n += step {
			if _, err := parse(data[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s cut to %d of %d bytes: %v, want ErrMalformed", name, n, len(data), err)
			}
		}
	}

	data, err := os.ReadFile(filepath.Join("testdata", "values.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(off int, b ...byte) []byte {
		c := append([]byte(nil), data...)
		copy(c[off:], b)
		return c
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"magic", corrupt(0, 'G', 'G', 'U', 'X'), ErrMalformed},
		{"version 1", corrupt(4, 1, 0, 0, 0), ErrUnsupported},
		{"version 4", corrupt(4, 4, 0, 0, 0), ErrUnsupported},
		{"big-endian", corrupt(4, 0, 0, 0, 3), ErrUnsupported},
		{"tensor count", corrupt(8, huge...), ErrMalformed},
		{"metadata count", corrupt(16, huge...), ErrMalformed},
		{"first key length", corrupt(24, huge...), ErrMalformed},
	} {
		if _, err := parse(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"values.gguf", "llama_tiny.gguf"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 4096 {
			data = data[:4096] // a header prefix is the interesting part
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither ErrMalformed nor ErrUnsupported: %v", err)
			}
			return
		}
		for _, ti := range g.Tensors {
			raw := g.Data(ti) // must be in bounds
			if canDequantize(ti.Type) && ti.NumElements() < 1<<16 {
				if err := Dequantize(make([]float32, ti.NumElements()), ti.Type, raw); err != nil {
					t.Fatalf("tensor %s of a parsed file: %v", ti.Name, err)
				}
			}
		}
	})
}
