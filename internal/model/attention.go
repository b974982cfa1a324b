package model

import (
	"math"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

// rope holds what the Llama family's rotary embedding needs: the inverse
// frequencies, and rot [head_dim, head_dim], the signed permutation with
// x@rot = rotate_half(x), which turns transformers' narrow/neg/cat into one
// exact matmul. cos and sin are made per pass for its positions only, so no
// table of max_position_embeddings rows (134 MB for Llama 3.1) is kept.
type rope struct {
	inv []float32
	rot ct
}

// ropeInvFreq is transformers' inverse frequencies for the config's rope
// type (ROPE_INIT_FUNCTIONS: default, linear, llama3), in float32 as torch
// computes them, and the attention scaling (1 for these types).
func ropeInvFreq(c *Config) []float32 {
	d := c.HeadDim
	inv := make([]float32, d/2)
	for i := range inv {
		// 1.0 / (base ** (arange(0, dim, 2).float() / dim))
		e := float32(2*i) / float32(d)
		inv[i] = float32(1 / math.Pow(c.RopeTheta, float64(e)))
	}
	switch c.Rope.Type {
	case "linear":
		for i := range inv {
			inv[i] /= float32(c.Rope.Factor)
		}
	case "llama3":
		r := c.Rope
		factor := float32(r.Factor)
		low, high := float32(r.LowFreqFactor), float32(r.HighFreqFactor)
		old := float32(r.OriginalMaxPositions)
		lowWavelen, highWavelen := old/low, old/high
		for i, f := range inv {
			wavelen := 2 * float32(math.Pi) / f
			scaled := f
			if wavelen > lowWavelen {
				scaled = f / factor
			}
			if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
				smooth := (old/wavelen - low) / (high - low)
				scaled = (1-smooth)*scaled/factor + smooth*scaled
			}
			inv[i] = scaled
		}
	}
	return inv
}

// newRope builds rot on dev in dt; the caller frees it.
func newRope(s *scope, c *Config, dev gotch.Device, dt gotch.DType) *rope {
	d := c.HeadDim
	rot := make([]float32, d*d)
	h := d / 2
	for j := 0; j < h; j++ {
		rot[(j+h)*d+j] = -1 // out[j] = -x[j+h]
		rot[j*d+j+h] = 1    // out[j+h] = x[j]
	}
	r := &rope{inv: ropeInvFreq(c), rot: s.Floats(dev, dt, rot, int64(d), int64(d))}
	s.Detach(r.rot)
	return r
}

func (r *rope) free() {
	if r.rot != nil {
		torch.Free(r.rot)
	}
}

// tables makes cos and sin [B,1,T,D] for positions pos [B*T] as
// transformers' LlamaRotaryEmbedding does: freqs = position * inv_freq in
// float32, emb = cat(freqs, freqs), then cos and sin cast to the dtype.
func (r *rope) tables(s *scope, pos []int64, b, t int64, dev gotch.Device, dt gotch.DType) (cos, sin ct) {
	d := 2 * len(r.inv)
	cv := make([]float32, len(pos)*d)
	sv := make([]float32, len(pos)*d)
	r.values(pos, cv, sv)
	return s.Floats(dev, dt, cv, b, 1, t, int64(d)), s.Floats(dev, dt, sv, b, 1, t, int64(d))
}

// values writes cos and sin [len(pos), head_dim] for positions pos into
// cv and sv.
func (r *rope) values(pos []int64, cv, sv []float32) {
	d := 2 * len(r.inv)
	for i, p := range pos {
		row := i * d
		for j, f := range r.inv {
			a := float64(float32(p) * f)
			c, sn := float32(math.Cos(a)), float32(math.Sin(a))
			cv[row+j], cv[row+j+d/2] = c, c
			sv[row+j], sv[row+j+d/2] = sn, sn
		}
	}
}

// apply is x*cos + rotate_half(x)*sin, transformers' apply_rotary_pos_emb.
func (r *rope) apply(s *scope, x, cos, sin ct) ct {
	return s.Addcmul(s.Mul(x, cos), s.matmulRows(x, r.rot), sin)
}

// repeatKV expands [B,Hkv,T,D] to [B,Hkv*rep,T,D] as transformers'
// repeat_kv does (libtorch 2.1's SDPA has no enable_gqa).
func repeatKV(s *scope, x ct, rep int64) ct {
	if rep == 1 || !s.OK() {
		return x
	}
	sh := torch.Shape(x)
	b, h, t, d := sh[0], sh[1], sh[2], sh[3]
	return s.Reshape(s.Expand(s.Unsqueeze(x, 2), b, h, rep, t, d), b, h*rep, t, d)
}

// maskInfo is a batch's attention mask resolved in Go: position ids as
// transformers' generate() derives them (cumsum-1, 1 at pads) and the
// boolean [B,1,T,T] mask SDPA takes (causal, pads masked as keys; a query
// always sees itself so that no row is empty and no NaN appears).
type maskInfo struct {
	b, t    int64
	pos     []int64
	allOnes bool
	mask    []bool // [B,1,T,T], or [1,1,T,T] when allOnes
}

// tensor makes the mask on dev.
func (mi *maskInfo) tensor(s *scope, dev gotch.Device) ct {
	if mi.allOnes {
		return s.Bools(dev, mi.mask, 1, 1, mi.t, mi.t)
	}
	return s.Bools(dev, mi.mask, mi.b, 1, mi.t, mi.t)
}

func newMaskInfo(b, t int64, mask []int64) *maskInfo {
	mi := &maskInfo{b: b, t: t, pos: make([]int64, b*t), allOnes: true}
	for _, v := range mask {
		if v == 0 {
			mi.allOnes = false
			break
		}
	}
	for i := int64(0); i < b; i++ {
		n := int64(0)
		for j := int64(0); j < t; j++ {
			if mask == nil || mask[i*t+j] != 0 {
				mi.pos[i*t+j] = n
				n++
			} else {
				mi.pos[i*t+j] = 1
			}
		}
	}
	if mi.allOnes {
		// One causal mask broadcast over the batch. (gotch cannot pass SDPA
		// "no mask": its undefined tensor arrives as a present one.)
		mi.mask = make([]bool, t*t)
		for q := int64(0); q < t; q++ {
			for k := int64(0); k <= q; k++ {
				mi.mask[q*t+k] = true
			}
		}
		return mi
	}
	mi.mask = make([]bool, b*t*t)
	for i := int64(0); i < b; i++ {
		for q := int64(0); q < t; q++ {
			row := mi.mask[(i*t+q)*t:]
			for k := int64(0); k <= q; k++ {
				row[k] = k == q || mask[i*t+k] != 0
			}
		}
	}
	return mi
}
