package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Type is a ggml tensor type.
type Type uint32

// The ggml tensor types this package knows the layout of. Dequantize handles
// F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q4_1 Type = 3
	Q5_0 Type = 6
	Q5_1 Type = 7
	Q8_0 Type = 8
	Q8_1 Type = 9
	Q2_K Type = 10
	Q3_K Type = 11
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	Q8_K Type = 15
	I8   Type = 24
	I16  Type = 25
	I32  Type = 26
	I64  Type = 27
	F64  Type = 28
	BF16 Type = 30
)

// typeInfo gives each type's name, elements per block and bytes per block
// (ggml's type traits), so any known tensor's size can be checked.
var typeInfo = map[Type]struct {
	name        string
	block, size int
}{
	F32: {"F32", 1, 4}, F16: {"F16", 1, 2}, BF16: {"BF16", 1, 2}, F64: {"F64", 1, 8},
	I8: {"I8", 1, 1}, I16: {"I16", 1, 2}, I32: {"I32", 1, 4}, I64: {"I64", 1, 8},
	Q4_0: {"Q4_0", 32, 2 + 16}, Q4_1: {"Q4_1", 32, 2 + 2 + 16},
	Q5_0: {"Q5_0", 32, 2 + 4 + 16}, Q5_1: {"Q5_1", 32, 2 + 2 + 4 + 16},
	Q8_0: {"Q8_0", 32, 2 + 32}, Q8_1: {"Q8_1", 32, 4 + 4 + 32},
	Q2_K: {"Q2_K", 256, 84}, Q3_K: {"Q3_K", 256, 110}, Q4_K: {"Q4_K", 256, 144},
	Q5_K: {"Q5_K", 256, 176}, Q6_K: {"Q6_K", 256, 210}, Q8_K: {"Q8_K", 256, 292},
}

func (t Type) String() string {
	if i, ok := typeInfo[t]; ok {
		return i.name
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// Dequantize decodes raw, the bytes of a tensor of type t, into dst, whose
// length is the element count. Types other than F32, F16, BF16, Q8_0, Q4_0
// and Q4_1 are an error wrapping ErrUnsupported.
func Dequantize(dst []float32, t Type, raw []byte) error {
	info, ok := typeInfo[t]
	if !ok {
		return fmt.Errorf("dequantize %s: %w", t, ErrUnsupported)
	}
	if len(dst)%info.block != 0 || len(raw) != len(dst)/info.block*info.size {
		return fmt.Errorf("dequantize %s: %d bytes for %d elements: %w", t, len(raw), len(dst), ErrMalformed)
	}
	le := binary.LittleEndian
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = halfToFloat(le.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(raw[2*i:])) << 16)
		}
	case Q8_0: // per block: f16 scale d, 32 int8 q; x = d*q
		for b := range len(dst) / 32 {
			blk, out := raw[b*34:(b+1)*34], dst[b*32:(b+1)*32]
			d := halfToFloat(le.Uint16(blk))
			for j, q := range blk[2:] {
				out[j] = d * float32(int8(q))
			}
		}
	case Q4_0: // per block: f16 scale d, 16 bytes of nibbles; x = d*(q-8)
		for b := range len(dst) / 32 {
			blk, out := raw[b*18:(b+1)*18], dst[b*32:(b+1)*32]
			d := halfToFloat(le.Uint16(blk))
			for j, q := range blk[2:] {
				out[j] = d * float32(int(q&0x0f)-8)
				out[j+16] = d * float32(int(q>>4)-8)
			}
		}
	case Q4_1: // per block: f16 scale d, f16 minimum m, 16 bytes of nibbles; x = d*q + m
		for b := range len(dst) / 32 {
			blk, out := raw[b*20:(b+1)*20], dst[b*32:(b+1)*32]
			d, m := halfToFloat(le.Uint16(blk)), halfToFloat(le.Uint16(blk[2:]))
			for j, q := range blk[4:] {
				out[j] = float32(d*float32(q&0x0f)) + m
				out[j+16] = float32(d*float32(q>>4)) + m
			}
		}
	default:
		return fmt.Errorf("dequantize %s: %w", t, ErrUnsupported)
	}
	return nil
}

// halfToFloat converts IEEE 754 binary16 bits to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: value = mant * 2^-24
	f := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}
