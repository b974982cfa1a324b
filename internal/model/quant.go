package model

/*
#cgo LDFLAGS: -lm
#include <stdlib.h>
#include "quant.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/torch"
)

// A model loaded from a GGUF file with LoadGGUF keeps the file's Q8_0, Q4_0
// and Q4_1 matrices as they are (a quantWeight on the Linear, no float32
// copy) and multiplies by them block by block, as ggml does on the CPU
// (quant.c): each input row is quantized to 8 bits in blocks of 32 with a
// float16 scale, and every output element is a sum over blocks of the two
// scales times an integer dot product, with AVX2 where the CPU has it and
// plain C elsewhere. The weights are read once per call however many rows
// there are (decode batches and prefill alike); a 4-bit matrix is an
// eighth of the float32 one's bytes, which is what a decode step's time
// goes to.

// qblock is the size of a ggml quantization block, in elements.
const qblock = 32

// quantWeight is a [out,in] matrix in ggml blocks along in, rows in Hugging
// Face order.
type quantWeight struct {
	typ     gguf.Type
	out, in int64
	data    []byte
	// ctype is the type id quant.c reads data as: typ's ggml id, or the
	// packed layout kf_qpack made (Q4_0 8 rows at a time) once data is in
	// C memory.
	ctype C.int
	// arena holds data when it is in C memory (placeOffHeap), shared by a
	// model's weights and freed with the last of them. A model's weights
	// live there rather than on the Go heap, whose collector would
	// otherwise let garbage grow to the size of the weights before it runs
	// (GOGC=100 doubles the live heap): that alone was ~100 MB of RSS on
	// SmolLM2.
	arena *quantArena
}

// quantArena is one C allocation (kf_qalloc: 2 MiB aligned, on
// transparent huge pages where the system gives them) that a model's
// quantized weights are placed in one after another.
type quantArena struct {
	base       unsafe.Pointer
	size, used int64
	refs       int // weights placed in it and not yet freed
}

// placeOffHeap moves the blocks of ws into one new C allocation, each in
// the layout quant.c reads fastest (kf_qpack; no other copy is kept), and
// reports whether it could allocate; if not they stay where they are.
func placeOffHeap(ws []*quantWeight) bool {
	const align = 64
	var size int64
	for _, w := range ws {
		if w.arena == nil {
			size += (int64(len(w.data)) + align - 1) / align * align
		}
	}
	if size == 0 {
		return true
	}
	p := C.kf_qalloc(C.size_t(size))
	if p == nil {
		return false
	}
	a := &quantArena{base: p, size: size}
	for _, w := range ws {
		if w.arena != nil {
			continue
		}
		n := int64(len(w.data))
		dst := unsafe.Slice((*byte)(unsafe.Add(p, a.used)), n)
		a.used += (n + align - 1) / align * align
		w.ctype = C.kf_qpack(C.int(w.typ), (*C.uint8_t)(unsafe.Pointer(&w.data[0])), (*C.uint8_t)(unsafe.Pointer(&dst[0])),
			C.long(w.out), C.long(w.in))
		w.data, w.arena = dst, a
		a.refs++
	}
	return true
}

// free releases w's C memory (with the arena's last weight); w is
// unusable after.
func (w *quantWeight) free() {
	if a := w.arena; a != nil {
		if a.refs--; a.refs == 0 {
			C.free(a.base)
			a.base = nil
		}
	}
	w.data, w.arena = nil, nil
}

// quantPacked8 marks a packed layout's type id (quant.h's KF_PACKED8).
const quantPacked8 = C.KF_PACKED8

// quantTypes are the types quant.c multiplies by, and their block bytes.
var quantTypes = map[gguf.Type]int64{gguf.Q8_0: 34, gguf.Q4_0: 18, gguf.Q4_1: 20}

func newQuantWeight(typ gguf.Type, shape []int64, data []byte) (*quantWeight, error) {
	bb, ok := quantTypes[typ]
	if !ok || len(shape) != 2 {
		return nil, fmt.Errorf("quantized weight: type %s shape %v: %w", typ, shape, ErrUnsupported)
	}
	if shape[1]%qblock != 0 || int64(len(data)) != shape[0]*shape[1]/qblock*bb {
		return nil, fmt.Errorf("quantized weight: %d bytes of %s for shape %v", len(data), typ, shape)
	}
	return &quantWeight{typ: typ, out: shape[0], in: shape[1], data: data, ctype: C.int(typ)}, nil
}

// quantSIMD reports whether quant.c runs its AVX2 code.
func quantSIMD() bool { return C.kf_quant_simd() != 0 }

// forceQuantC makes quant.c use its plain C code (tests compare the two).
func forceQuantC(on bool) {
	v := C.int(0)
	if on {
		v = 1
	}
	C.kf_quant_force_c(v)
}

// q8Bytes is the size of quant.c's kf_q8 block.
const q8Bytes = C.sizeof_kf_q8

// quantInput is the last input a scope quantized, kept so that the
// matrices reading the same input (q, k and v; gate and up) quantize it
// once: an input is recognised by its bytes, so a new tensor that happens
// to sit at the same address, or one changed in place, is quantized anew.
// The buffers are reused from call to call.
type quantInput struct {
	x  []byte // the input's float32 values, as bytes
	q  []byte // its kf_q8 blocks
	in int64
	// next is the first column not yet claimed by a thread in the
	// current product (kf_qmatmul_claim).
	next C.long
}

// quantize returns x [m,in] (contiguous float32) quantized by
// kf_q8_quantize, reusing the scope's last quantization when x holds the
// same values.
func (s *scope) quantize(x ct, m, in int64) *C.kf_q8 {
	src := unsafe.Slice((*byte)(torch.DataPtr(x)), m*in*4)
	qi := s.qin
	if qi == nil {
		qi = &quantInput{}
		s.qin = qi
	}
	if qi.in != in || !bytes.Equal(qi.x, src) {
		n := int(m * in / qblock * q8Bytes)
		qi.x = append(qi.x[:0], src...)
		qi.q = slices.Grow(qi.q[:0], n)[:n]
		qi.in = in
		C.kf_q8_quantize((*C.float)(unsafe.Pointer(&qi.x[0])), (*C.kf_q8)(unsafe.Pointer(&qi.q[0])), C.long(m), C.long(in))
		s.quantized++
	}
	return (*C.kf_q8)(unsafe.Pointer(&qi.q[0]))
}

// quantMatmul is x @ w^T for x [..., in] float32, contiguous, on the CPU.
func (s *scope) quantMatmul(x ct, w *quantWeight) ct {
	if !s.OK() {
		return nil
	}
	if !torch.IsFloat32(x) || !torch.OnCPU(x) {
		s.Fail(fmt.Errorf("quantized linear: input must be float32 on the CPU"))
		return nil
	}
	x = s.Contiguous(x)
	xs := torch.Shape(x)
	if len(xs) == 0 || xs[len(xs)-1] != w.in {
		s.Fail(fmt.Errorf("quantized linear: input %v, weight [%d,%d]", xs, w.out, w.in))
		return nil
	}
	m := torch.Numel(xs) / w.in
	y := s.Empty(append(xs[:len(xs)-1:len(xs)-1], w.out)...)
	if y == nil || m == 0 {
		return y
	}
	xq := s.quantize(x, m, w.in)
	wp := (*C.uint8_t)(unsafe.Pointer(&w.data[0]))
	yp := (*C.float)(torch.DataPtr(y))
	// Share the output columns with threads-1 goroutines when there is
	// enough work: each takes chunks (whole tiles) until none is left.
	threads := int64(1)
	if t := int64(torch.Threads()); t > 1 && m*w.in*w.out >= 1<<17 {
		threads = t
	}
	chunk := (w.out/(4*threads) + 15) / 16 * 16
	next := &s.qin.next
	*next = 0
	claim := func() {
		C.kf_qmatmul_claim(w.ctype, wp, xq, yp, C.long(m), C.long(w.in), C.long(w.out), C.long(chunk), next)
	}
	var wg sync.WaitGroup
	for range threads - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim()
		}()
	}
	claim()
	wg.Wait()
	return y
}

// quantRows is the embedding lookup of ids (int64, any shape) in w: rows
// dequantized into [..., in].
func (s *scope) quantRows(ids ct, w *quantWeight) ct {
	if !s.OK() {
		return nil
	}
	is := torch.Shape(ids)
	vals := s.ReadInt64s(ids)
	y := s.Empty(append(is[:len(is):len(is)], w.in)...)
	if y == nil || len(vals) == 0 {
		return y
	}
	for _, v := range vals {
		if v < 0 || v >= w.out {
			s.Fail(fmt.Errorf("quantized embedding: token id %d outside the vocabulary of %d", v, w.out))
			return nil
		}
	}
	C.kf_qrows(w.ctype, (*C.uint8_t)(unsafe.Pointer(&w.data[0])), (*C.long)(unsafe.Pointer(&vals[0])), C.long(len(vals)), C.long(w.in),
		(*C.float)(torch.DataPtr(y)))
	return y
}

// quantMatmulCols computes columns [n0,n1) of y [m,w.out] = x @ w^T for x
// quantized by quantize (a single thread; tests split the columns at
// places the threaded calls never do).
func quantMatmulCols(w *quantWeight, xq *C.kf_q8, y []float32, m, n0, n1 int64) {
	C.kf_qmatmul(w.ctype, (*C.uint8_t)(unsafe.Pointer(&w.data[0])), xq, (*C.float)(unsafe.Pointer(&y[0])), C.long(m), C.long(w.in),
		C.long(w.out), C.long(n0), C.long(n1))
}
