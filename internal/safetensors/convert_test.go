package safetensors

import (
	"math"
	"slices"
	"testing"
)

func TestIntegerAndFloatRoundTrip(t *testing.T) {
	f := []float32{0, -1.5, float32(math.Inf(1)), math.MaxFloat32, math.SmallestNonzeroFloat32}
	if got := Float32s(BytesOfFloat32s(f)); !slices.Equal(got, f) {
		t.Errorf("float32: %v", got)
	}
	d := []float64{0, -1.5, math.Pi}
	if got := Float64s(BytesOfFloat64s(d)); !slices.Equal(got, d) {
		t.Errorf("float64: %v", got)
	}
	i := []int32{0, -1, math.MaxInt32, math.MinInt32}
	if got := Int32s(BytesOfInt32s(i)); !slices.Equal(got, i) {
		t.Errorf("int32: %v", got)
	}
	l := []int64{0, -1, math.MaxInt64, math.MinInt64}
	if got := Int64s(BytesOfInt64s(l)); !slices.Equal(got, l) {
		t.Errorf("int64: %v", got)
	}
	// Little-endian on disk.
	if b := BytesOfInt32s([]int32{1}); b[0] != 1 || b[3] != 0 {
		t.Errorf("int32 1 encodes as %v", b)
	}
	// Trailing partial elements are ignored, not a panic.
	if got := Float32s([]byte{1, 2, 3}); len(got) != 0 {
		t.Errorf("partial element decoded as %v", got)
	}
}

func TestHalfRoundTripsEveryValue(t *testing.T) {
	// Every half and every bfloat16 bit pattern decodes to a float32 that
	// encodes back to the same bits (NaNs to the canonical quiet NaN).
	for h := range 1 << 16 {
		b := []byte{byte(h), byte(h >> 8)}
		f := F16ToFloat32(b)[0]
		back := Float32ToF16([]float32{f})
		want := uint16(h)
		if f != f {
			want = uint16(h) | 0x200 // quieted
		}
		if got := uint16(back[0]) | uint16(back[1])<<8; got != want {
			t.Fatalf("f16 %#04x -> %g -> %#04x", h, f, got)
		}
		g := BF16ToFloat32(b)[0]
		back = Float32ToBF16([]float32{g})
		want = uint16(h)
		if g != g {
			want = 0x7fc0
		}
		if got := uint16(back[0]) | uint16(back[1])<<8; got != want {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, g, got)
		}
	}
}
