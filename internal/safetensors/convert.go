package safetensors

import (
	"encoding/binary"
	"math"
)

// The conversions below read and write little-endian bytes, the byte order of
// safetensors data. Trailing bytes that do not form a whole element are
// ignored.

// Float32s decodes F32 bytes into a new slice.
func Float32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// Float64s decodes F64 bytes into a new slice.
func Float64s(b []byte) []float64 {
	out := make([]float64, len(b)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// Int32s decodes I32 bytes into a new slice.
func Int32s(b []byte) []int32 {
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// Int64s decodes I64 bytes into a new slice.
func Int64s(b []byte) []int64 {
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// BytesOfFloat32s encodes v as F32 bytes.
func BytesOfFloat32s(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// BytesOfFloat64s encodes v as F64 bytes.
func BytesOfFloat64s(v []float64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(x))
	}
	return out
}

// BytesOfInt32s encodes v as I32 bytes.
func BytesOfInt32s(v []int32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(x))
	}
	return out
}

// BytesOfInt64s encodes v as I64 bytes.
func BytesOfInt64s(v []int64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
	}
	return out
}

// BF16ToFloat32 decodes BF16 bytes into float32 values (exact).
func BF16ToFloat32(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
	}
	return out
}

// Float32ToBF16 encodes v as BF16 bytes, rounding to nearest even as torch
// does; NaN becomes the quiet NaN 0x7fc0 (torch's scalar conversion; its
// vectorised CPU path writes 0xffff, also a NaN).
func Float32ToBF16(v []float32) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], bf16Bits(x))
	}
	return out
}

func bf16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	if x != x {
		return 0x7fc0
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// F16ToFloat32 decodes IEEE 754 half-precision bytes into float32 values
// (exact, subnormals included).
func F16ToFloat32(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN; keep the payload
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: man x 2^-24
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// Float32ToF16 encodes v as IEEE 754 half-precision bytes, rounding to
// nearest even as torch and numpy do; values too large become ±Inf and NaNs
// stay NaN with their sign and top payload bits.
func Float32ToF16(v []float32) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], f16Bits(x))
	}
	return out
}

func f16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	sign := uint16(u>>16) & 0x8000
	exp := int32(u>>23) & 0xff
	man := u & 0x7fffff
	if exp == 0xff { // Inf or NaN
		if man == 0 {
			return sign | 0x7c00
		}
		// A quiet NaN keeping the top payload bits, as the F16C instruction
		// torch and numpy use on x86 does.
		return sign | 0x7e00 | uint16(man>>13)
	}
	e := exp - 127 + 15 // rebiased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): value = m x 2^(e-1-10) with the implicit
		// bit made explicit; shift right by 14-e (>= 14) with rounding.
		if e < -10 {
			return sign // rounds to zero even at the halfway point
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rest := m & (1<<shift - 1)
		r := m >> shift
		if rest > half || (rest == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rest := man & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, up to Inf: still correct
	}
	return sign | uint16(r)
}
