package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/torch"
)

// randomBlocks makes rows*cols/32 random ggml blocks of typ: scales and
// minimums are float16 values of the sizes real weights have.
func randomBlocks(r *rand.Rand, typ gguf.Type, rows, cols int64) []byte {
	bb := quantTypes[typ]
	out := make([]byte, rows*cols/qblock*bb)
	half := func(f float32) uint16 { return f32ToHalf(f) }
	for b := int64(0); b < rows*cols/qblock; b++ {
		blk := out[b*bb : (b+1)*bb]
		for i := range blk {
			blk[i] = byte(r.IntN(256))
		}
		binary.LittleEndian.PutUint16(blk, half(float32(r.NormFloat64()*0.01)))
		if typ == gguf.Q4_1 {
			binary.LittleEndian.PutUint16(blk[2:], half(float32(r.NormFloat64()*0.05)))
		}
	}
	return out
}

// f32ToHalf rounds f to float16 bits (nearest; the values here are normal).
func f32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	mant := b & 0x7fffff
	h := uint32(exp)<<10 | mant>>13
	if mant&0x1fff > 0x1000 || mant&0x1fff == 0x1000 && h&1 == 1 {
		h++
	}
	return sign | uint16(h)
}

// TestQuantMatmul: for each type, x @ W^T from the blocks equals the float64
// product of the dequantized W and x within the error that quantizing x
// to 8 bits allows (per element: sum |w| * half an activation step); the
// AVX2 and plain C paths agree; a row's result is the same bits alone and
// in a batch of 8 and in batches of every size up to 8 (the scheduler's
// batches must not change answers).
func TestQuantMatmul(t *testing.T) {
	const k, n = 576, 203 // n: whole tiles of 4 and a tail of 3
	r := rand.New(rand.NewPCG(7, 9))
	for _, typ := range []gguf.Type{gguf.Q8_0, gguf.Q4_0, gguf.Q4_1} {
		t.Run(typ.String(), func(t *testing.T) {
			raw := randomBlocks(r, typ, n, k)
			w, err := newQuantWeight(typ, []int64{n, k}, raw)
			if err != nil {
				t.Fatal(err)
			}
			deq := make([]float32, n*k)
			if err := gguf.Dequantize(deq, typ, raw); err != nil {
				t.Fatal(err)
			}
			const m = 8
			xv := make([]float32, m*k)
			for i := range xv {
				xv[i] = float32(r.NormFloat64())
			}
			run := func(rows []float32, c bool) []float32 {
				forceQuantC(c)
				defer forceQuantC(false)
				var s scope
				defer s.Free()
				x := s.Floats(gotch.CPU, gotch.Float, rows, int64(len(rows))/k, k)
				out := s.ReadFloat32s(s.quantMatmul(x, w))
				if !s.OK() {
					t.Fatal(s.Err())
				}
				return out
			}
			got, gotC := run(xv, false), run(xv, true)
			for i := range m {
				xr := xv[i*k : (i+1)*k]
				for j := range int64(n) {
					var want, bound float64
					for b := range k / qblock {
						amax := 0.0
						for _, v := range xr[b*qblock : (b+1)*qblock] {
							amax = max(amax, math.Abs(float64(v)))
						}
						for c := b * qblock; c < (b+1)*qblock; c++ {
							wv := float64(deq[j*k+int64(c)])
							want += wv * float64(xr[c])
							bound += math.Abs(wv) * (amax/127/2 + amax*1e-3) // rounding to a step, and the float16 scale
						}
					}
					g := float64(got[int64(i)*n+j])
					if d := math.Abs(g - want); d > bound+1e-5 {
						t.Fatalf("row %d col %d: %g, want %g within %g", i, j, g, want, bound)
					}
					if d := math.Abs(g - float64(gotC[int64(i)*n+j])); d > 1e-4*(1+math.Abs(g)) {
						t.Fatalf("row %d col %d: AVX2 %g, C %g", i, j, g, gotC[int64(i)*n+j])
					}
				}
			}
			alone := run(xv[3*k:4*k], false)
			if !slices.Equal(alone, got[3*n:4*n]) {
				t.Errorf("row 3 alone differs from row 3 in a batch of %d", m)
			}
			for rows := 1; rows < m; rows++ {
				if part := run(xv[:rows*k], false); !slices.Equal(part, got[:rows*n]) {
					t.Errorf("the first %d rows as a batch differ from the same rows in a batch of %d", rows, m)
				}
			}

			t.Logf("simd %v", quantSIMD())
		})
	}
}

// TestLoadGGUFQuantizedTiny: the tiny GGUF of internal/gguf/testdata (block
// tensors in F32, F16, BF16, Q8_0, Q4_0 and Q4_1, a Q8_0 tied embedding)
// loaded with its blocks kept gives the logits of the same file
// dequantized to float32 (TestGGUFParityTiny holds those to transformers)
// within what 8-bit activations allow, and the same greedy tokens.
func TestLoadGGUFQuantizedTiny(t *testing.T) {
	const src = "../gguf/testdata/llama_tiny.gguf"
	q, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	f, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}, Dequantize: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := q.Quantized(); got["Q8_0"] != 3 || got["Q4_0"] != 3 || got["Q4_1"] != 3 {
		t.Errorf("quantized weights by type: %v", got)
	}
	if len(f.Quantized()) != 0 {
		t.Errorf("dequantized model holds quantized weights: %v", f.Quantized())
	}
	ids := []int64{1, 45, 97, 200, 3, 17, 301, 8}
	logits := func(m *Model) []float32 {
		shape := []int64{1, int64(len(ids))}
		mask := []int64{1, 1, 1, 1, 1, 1, 1, 1}
		out, err := m.Forward(tensorOf(t, ids, shape), tensorOf(t, mask, shape))
		if err != nil {
			t.Fatal(err)
		}
		defer out.MustDrop()
		return valuesOf(t, out)
	}
	lq, lf := logits(q), logits(f)
	d, scale := maxAbsDiff(lq, lf), 0.0
	for _, v := range lf {
		scale = max(scale, math.Abs(float64(v)))
	}
	t.Logf("max |logit delta| %g (logits up to %g)", d, scale)
	if d > 0.02*scale {
		t.Errorf("max |logit delta| %g > 2%% of the largest logit %g", d, scale)
	}
	opts := GenerateOptions{MaxNewTokens: 12, EOS: []int{}}
	prompt := []int{1, 45, 97, 200, 3}
	if gq, gf := greedyAlone(t, q, prompt, opts), greedyAlone(t, f, prompt, opts); !slices.Equal(gq, gf) {
		t.Errorf("greedy tokens quantized %v, float32 %v", gq, gf)
	}
	if err := q.Save(t.TempDir()); err == nil {
		t.Error("Save of a quantized model succeeded")
	}
	if _, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32", Trainable: true}}); err == nil {
		t.Error("a trainable quantized model loaded")
	}
}

// TestQuantSharedInput: the matrices that read the same input (q, k and v
// of a layer) quantize it once and give the bits that quantizing it for
// each matrix gives; an input with other values at the same address (a
// tensor changed in place, or a new one in a freed one's memory) is
// quantized anew.
func TestQuantSharedInput(t *testing.T) {
	const k = 576
	r := rand.New(rand.NewPCG(3, 4))
	var ws []*quantWeight
	for i, typ := range []gguf.Type{gguf.Q4_1, gguf.Q8_0, gguf.Q4_0} {
		w, err := newQuantWeight(typ, []int64{int64(64 * (i + 1)), k}, randomBlocks(r, typ, int64(64*(i+1)), k))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	xv := make([]float32, 3*k)
	for i := range xv {
		xv[i] = float32(r.NormFloat64())
	}
	fresh := func(vals []float32, w *quantWeight) []float32 {
		var s scope
		defer s.Free()
		out := s.ReadFloat32s(s.quantMatmul(s.Floats(gotch.CPU, gotch.Float, vals, 3, k), w))
		if !s.OK() {
			t.Fatal(s.Err())
		}
		return out
	}
	var s scope
	defer s.Free()
	x := s.Floats(gotch.CPU, gotch.Float, xv, 3, k)
	for i, w := range ws {
		if got := s.ReadFloat32s(s.quantMatmul(x, w)); !slices.Equal(got, fresh(xv, w)) {
			t.Errorf("matrix %d on the shared quantized input differs from quantizing for it alone", i)
		}
	}
	if s.quantized != 1 {
		t.Errorf("3 matrices on one input quantized it %d times, want once", s.quantized)
	}
	// Change one value in place: same tensor, same address, new values.
	data := unsafe.Slice((*float32)(torch.DataPtr(x)), len(xv))
	data[k+5] += 1
	changed := slices.Clone(data)
	if got := s.ReadFloat32s(s.quantMatmul(x, ws[0])); !slices.Equal(got, fresh(changed, ws[0])) {
		t.Error("after the input changed in place, the product is not the product of the new values")
	}
	if s.quantized != 2 {
		t.Errorf("an input changed in place was quantized %d times in all, want 2", s.quantized)
	}
	if !s.OK() {
		t.Fatal(s.Err())
	}
}

// TestQuantPacked: a Q4_0, Q4_1 or Q8_0 matrix placed off the heap is packed 8
// rows at a time (kf_qpack) and multiplied by the packed kernels (1 to 4
// activation rows x 8 weight rows at a time): the plain C code on the
// packed blocks gives the bits it gives on the plain ones (the packing
// loses nothing), the AVX2 kernels agree with it within float rounding, a
// row's result is the same bits alone, in every batch size up to 8, in a
// prefill-sized batch (the other loop order) and with the columns split
// anywhere (groups of 8 cut in two), and the embedding lookup of packed
// rows gives the plain rows' values. A matrix of rows not a multiple of 8
// stays plain.
func TestQuantPacked(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, typ := range []gguf.Type{gguf.Q4_0, gguf.Q4_1, gguf.Q8_0} {
		for _, k := range []int64{576, 1536} {
			t.Run(fmt.Sprintf("%s/K=%d", typ, k), func(t *testing.T) { testQuantPacked(t, r, typ, k) })
		}
		odd, err := newQuantWeight(typ, []int64{203, 576}, randomBlocks(r, typ, 203, 576))
		if err != nil {
			t.Fatal(err)
		}
		raw := slices.Clone(odd.data)
		if !placeOffHeap([]*quantWeight{odd}) {
			t.Fatal("no C memory")
		}
		if int(odd.ctype) != int(typ) || !slices.Equal(odd.data, raw) {
			t.Errorf("%s of 203 rows off the heap: type id %#x, blocks unchanged %v; want plain", typ, odd.ctype, slices.Equal(odd.data, raw))
		}
		odd.free()
	}
}

func testQuantPacked(t *testing.T, r *rand.Rand, typ gguf.Type, k int64) {
	const n = 208
	raw := randomBlocks(r, typ, n, k)
	plain, err := newQuantWeight(typ, []int64{n, k}, raw)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := newQuantWeight(typ, []int64{n, k}, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !placeOffHeap([]*quantWeight{packed}) {
		t.Fatal("no C memory")
	}
	defer packed.free()
	if want := int(typ) | quantPacked8; int(packed.ctype) != want {
		t.Fatalf("type id %#x off the heap, want the packed %#x", packed.ctype, want)
	}
	if slices.Equal(packed.data, raw) {
		t.Fatal("packed blocks are the plain ones")
	}
	const m, big = 8, 96 // big*k/32 blocks are more than the kernel keeps sums of on the stack
	xv := make([]float32, big*k)
	for i := range xv {
		xv[i] = float32(r.NormFloat64())
	}
	run := func(w *quantWeight, rows []float32, c bool) []float32 {
		forceQuantC(c)
		defer forceQuantC(false)
		var s scope
		defer s.Free()
		out := s.ReadFloat32s(s.quantMatmul(s.Floats(gotch.CPU, gotch.Float, rows, int64(len(rows))/k, k), w))
		if !s.OK() {
			t.Fatal(s.Err())
		}
		return out
	}
	ref := run(plain, xv[:m*k], true)
	if got := run(packed, xv[:m*k], true); !slices.Equal(got, ref) {
		t.Fatal("plain C on the packed blocks differs from plain C on the plain ones")
	}
	got := run(packed, xv[:m*k], false)
	for i, g := range got {
		if d := math.Abs(float64(g - ref[i])); d > 1e-4*(1+math.Abs(float64(ref[i]))) {
			t.Fatalf("row %d col %d: packed kernel %g, plain C %g", i/n, i%n, g, ref[i])
		}
	}
	for rows := int64(1); rows < m; rows++ {
		if part := run(packed, xv[:rows*k], false); !slices.Equal(part, got[:rows*n]) {
			t.Errorf("the first %d rows as a batch differ from the same rows in a batch of %d", rows, m)
		}
	}
	if alone := run(packed, xv[5*k:6*k], false); !slices.Equal(alone, got[5*n:6*n]) {
		t.Errorf("row 5 alone differs from row 5 in a batch of %d", m)
	}
	if all := run(packed, xv, false); !slices.Equal(all[:m*n], got) {
		t.Errorf("the first %d rows in a batch of %d differ from the same rows in a batch of %d", m, big, m)
	}
	var s scope
	defer s.Free()
	x := s.Floats(gotch.CPU, gotch.Float, xv[:m*k], m, k)
	xq := s.quantize(s.Contiguous(x), m, k)
	split := make([]float32, m*n)
	for _, cut := range [][2]int64{{0, 13}, {13, 100}, {100, 101}, {101, 203}, {203, n}} {
		quantMatmulCols(packed, xq, split, m, cut[0], cut[1])
	}
	if !slices.Equal(split, got) {
		t.Error("columns split at 13, 100, 101, 203 differ from the whole product")
	}
	ids := s.Int64s(gotch.CPU, []int64{0, 7, 8, 99, 207}, 5)
	if a, b := s.ReadFloat32s(s.quantRows(ids, packed)), s.ReadFloat32s(s.quantRows(ids, plain)); !slices.Equal(a, b) {
		t.Error("embedding rows of the packed blocks differ from the plain ones")
	}
	if !s.OK() {
		t.Fatal(s.Err())
	}
}

// TestQuantQuantizeMatchesC: the AVX2 activation quantization (8 blocks at
// a time, F16C roundings) gives the plain C code's bytes exactly, for
// blocks of zeros, of exact halves (ties of the rounding), of tiny and of
// ordinary values, and for block counts that are not a multiple of 8.
func TestQuantQuantizeMatchesC(t *testing.T) {
	if !quantSIMD() {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, k := range []int64{32, 576, 1536, 32 * 13} {
		const m = 3
		xv := make([]float32, m*k)
		for i := range xv {
			switch r.IntN(4) {
			case 0:
				xv[i] = float32(r.IntN(255)-127) * 0.5
			case 1:
				xv[i] = float32(r.NormFloat64() * 1e-6)
			default:
				xv[i] = float32(r.NormFloat64())
			}
		}
		clear(xv[:qblock]) // a block of zeros
		quant := func(c bool) []byte {
			forceQuantC(c)
			defer forceQuantC(false)
			var s scope
			defer s.Free()
			x := s.Floats(gotch.CPU, gotch.Float, xv, m, k)
			q := s.quantize(x, m, k)
			return slices.Clone(unsafe.Slice((*byte)(unsafe.Pointer(q)), m*k/qblock*q8Bytes))
		}
		if a, c := quant(false), quant(true); !slices.Equal(a, c) {
			t.Errorf("K=%d: AVX2 quantization differs from the C code's", k)
		}
	}
}
