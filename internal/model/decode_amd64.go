package model

/*
#include <stdlib.h>
#include "decode_amd64.h"
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// A served decode step of SmolLM2-135M (2 threads) spent, before this
// path, 55-59% of its CPU time in the weight products, 23% in libtorch's
// per-op work for the small ops around them (RMSNorm, rope, softmax,
// residual adds, SiLU, views and the allocations of their results: some
// 40 ops a layer) and 17-18% in the Go scheduler and the kernel waking
// and parking the goroutine that took half of each product's columns (7
// products a layer, 211 a step); attention 1-3%, sampling and HTTP under
// 1% (perf, docs/benchmarks.md). decode_amd64.c runs the whole step of a
// Llama-family model (Llama, Mistral, Qwen2, Qwen3) in C instead: the
// same products (gemm_amd64.c), the small ops in plain loops, on buffers
// kept between steps, by a pool of threads that stay up and take the
// step's work in chunks (5 phases a layer). It applies to a decode step over a BatchCache's sequences on a
// float32 CPU inference model whose projections are plain float32
// weights or ggml blocks (LoadGGUF: quant.c's kf_qmatmul, the input
// quantized once for q, k, v and once for gate, up), with no LoRA on a
// Linear and no served adapter in the batch; anything else takes the
// libtorch path, which stays the reference (TestFusedDecodeMatchesLibtorch).

// fusedModel is the C description of a model's weights (pointers into the
// tensors it holds) and the buffers a step passes, reused under mu.
type fusedModel struct {
	mu      sync.Mutex
	desc    *C.kf_model
	layers  *C.kf_layer
	linears []*Linear    // every Linear desc points into
	weights []*ts.Tensor // their Weight when desc was built
	rope    *rope
	pin     runtime.Pinner // quantized weights' bytes

	rows             int64 // rows the step buffers have room for
	st               *C.kf_step
	ids, pos, slot   *C.long
	best             *C.long // each row's greedy choice
	cos, sin, logits *C.float
	kc, vc           **C.float
}

// fusedFor returns m's fused decoder when it can run a step over active
// (all in one BatchCache), or nil.
func (m *Model) fusedFor(active []*Sequence) *fusedModel {
	m.fusedOnce.Do(func() { m.fused = m.buildFused() })
	f := m.fused
	if f == nil {
		return nil
	}
	for _, sq := range active {
		if sq.opts.Adapter != nil {
			return nil
		}
	}
	for i, l := range f.linears {
		if l.Weight != f.weights[i] || l.LoRA != nil {
			return nil
		}
	}
	return f
}

// fusedLin describes l for C, or reports that it is not a plain float32
// projection (its weight [out,in], or the tied embedding) nor a quantized
// one (LoadGGUF); pin keeps a quantized weight's Go bytes where
// the C description points.
func fusedLin(l *Linear, pin *runtime.Pinner) (C.kf_lin, bool) {
	var lin C.kf_lin
	if l == nil || l.Conv1D || l.LoRA != nil {
		return lin, false
	}
	switch {
	case l.quant != nil:
		if _, ok := quantTypes[l.quant.typ]; !ok || len(l.quant.data) == 0 {
			return lin, false
		}
		pin.Pin(&l.quant.data[0])
		lin = C.kf_lin{qw: unsafe.Pointer(&l.quant.data[0]), qtype: l.quant.ctype, K: C.long(l.quant.in), N: C.long(l.quant.out)}
	case l.Weight != nil && plainFloat(l.Weight) && len(torch.Shape(torch.Of(l.Weight))) == 2:
		// [out,in] as torch.nn.Linear stores it, or the tied embedding
		// [vocab,hidden]: y = x @ w^T.
		sh := torch.Shape(torch.Of(l.Weight))
		lin = C.kf_lin{w: (*C.float)(torch.DataPtr(torch.Of(l.Weight))), K: C.long(sh[1]), N: C.long(sh[0]), kind: 1}
	default:
		return lin, false
	}
	if l.Bias != nil {
		if !plainFloat(l.Bias) {
			return lin, false
		}
		lin.b = (*C.float)(torch.DataPtr(torch.Of(l.Bias)))
	}
	return lin, true
}

// plainFloat: t is a contiguous float32 tensor on the CPU.
func plainFloat(t *ts.Tensor) bool {
	c := torch.Of(t)
	return t != nil && torch.IsFloat32(c) && torch.OnCPU(c) && torch.IsContiguous(c)
}

// buildFused describes m for decode_amd64.c, or returns nil when the
// fused step does not apply to the model.
func (m *Model) buildFused() *fusedModel {
	var d *llamaDecoder
	var qn, kn []*ts.Tensor
	switch dec := m.dec.(type) {
	case *llamaDecoder:
		d = dec
	case *qwen3Decoder:
		d, qn, kn = dec.llamaDecoder, dec.qNorm, dec.kNorm
	default:
		return nil
	}
	c := m.Config
	if !haveKernel || m.trainable || m.act != "silu" || m.choice.Device != gotch.CPU || m.choice.DType != gotch.Float ||
		c.HeadDim%8 != 0 || c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 ||
		!(d.qembed != nil || plainFloat(d.embedW)) || !plainFloat(d.normW) || m.lmHead == nil {
		return nil
	}
	f := &fusedModel{rope: d.rope}
	defer func() {
		if f.desc == nil {
			f.pin.Unpin()
		}
	}()
	head, ok := fusedLin(m.lmHead, &f.pin)
	if !ok {
		return nil
	}
	f.linears, f.weights = append(f.linears, m.lmHead), append(f.weights, m.lmHead.Weight)
	n := len(d.layers)
	layers := (*C.kf_layer)(C.calloc(C.size_t(max(n, 1)), C.size_t(unsafe.Sizeof(C.kf_layer{}))))
	ls := unsafe.Slice(layers, max(n, 1))
	for i := range d.layers {
		l := &d.layers[i]
		cl := &ls[i]
		if !plainFloat(l.norm1W) || !plainFloat(l.norm2W) {
			C.free(unsafe.Pointer(layers))
			return nil
		}
		cl.norm1 = (*C.float)(torch.DataPtr(torch.Of(l.norm1W)))
		cl.norm2 = (*C.float)(torch.DataPtr(torch.Of(l.norm2W)))
		if qn != nil {
			if !plainFloat(qn[i]) || !plainFloat(kn[i]) {
				C.free(unsafe.Pointer(layers))
				return nil
			}
			cl.qnorm = (*C.float)(torch.DataPtr(torch.Of(qn[i])))
			cl.knorm = (*C.float)(torch.DataPtr(torch.Of(kn[i])))
		}
		for _, p := range []struct {
			dst *C.kf_lin
			l   *Linear
		}{{&cl.q, l.q}, {&cl.k, l.k}, {&cl.v, l.v}, {&cl.o, l.o}, {&cl.gate, l.gate}, {&cl.up, l.up}, {&cl.down, l.down}} {
			lin, ok := fusedLin(p.l, &f.pin)
			if !ok {
				C.free(unsafe.Pointer(layers))
				return nil
			}
			*p.dst = lin
			f.linears, f.weights = append(f.linears, p.l), append(f.weights, p.l.Weight)
		}
	}
	desc := (*C.kf_model)(C.calloc(1, C.size_t(unsafe.Sizeof(C.kf_model{}))))
	*desc = C.kf_model{H: C.long(c.HiddenSize), nh: C.long(c.NumHeads), nkv: C.long(c.NumKVHeads), D: C.long(c.HeadDim),
		I: C.long(c.IntermediateSize), V: C.long(c.VocabSize), L: C.long(n), eps: C.float(c.RMSNormEps),
		norm: (*C.float)(torch.DataPtr(torch.Of(d.normW))), head: head, layers: layers}
	if q := d.qembed; q != nil {
		f.pin.Pin(&q.data[0])
		desc.qembed, desc.qembed_type = unsafe.Pointer(&q.data[0]), q.ctype
	} else {
		desc.embed = (*C.float)(torch.DataPtr(torch.Of(d.embedW)))
	}
	f.desc, f.layers = desc, layers
	return f
}

// free releases the C memory (not the weights, which the model owns).
func (f *fusedModel) free() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range []unsafe.Pointer{unsafe.Pointer(f.desc), unsafe.Pointer(f.layers), unsafe.Pointer(f.st), unsafe.Pointer(f.ids),
		unsafe.Pointer(f.pos), unsafe.Pointer(f.slot), unsafe.Pointer(f.best), unsafe.Pointer(f.cos), unsafe.Pointer(f.sin),
		unsafe.Pointer(f.logits), unsafe.Pointer(f.kc), unsafe.Pointer(f.vc)} {
		C.free(p)
	}
	f.desc, f.layers, f.st, f.ids, f.pos, f.slot, f.best, f.cos, f.sin, f.logits, f.kc, f.vc = nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil
	f.rows, f.linears, f.weights = 0, nil, nil
	f.pin.Unpin()
}

// grow makes room for b rows in the step buffers.
func (f *fusedModel) grow(b int64) {
	if b <= f.rows {
		return
	}
	for _, p := range []unsafe.Pointer{unsafe.Pointer(f.ids), unsafe.Pointer(f.pos), unsafe.Pointer(f.slot), unsafe.Pointer(f.best),
		unsafe.Pointer(f.cos), unsafe.Pointer(f.sin), unsafe.Pointer(f.logits)} {
		C.free(p)
	}
	d := f.desc
	long, float := C.size_t(unsafe.Sizeof(C.long(0))), C.size_t(4)
	f.ids, f.pos, f.slot = (*C.long)(C.malloc(C.size_t(b)*long)), (*C.long)(C.malloc(C.size_t(b)*long)), (*C.long)(C.malloc(C.size_t(b)*long))
	f.best = (*C.long)(C.malloc(C.size_t(b) * long))
	f.cos, f.sin = (*C.float)(C.malloc(C.size_t(b*int64(d.D))*float)), (*C.float)(C.malloc(C.size_t(b*int64(d.D))*float))
	f.logits = (*C.float)(C.malloc(C.size_t(b*int64(d.V)) * float))
	if f.st == nil {
		f.st = (*C.kf_step)(C.calloc(1, C.size_t(unsafe.Sizeof(C.kf_step{}))))
		ptr := C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))
		f.kc, f.vc = (**C.float)(C.calloc(C.size_t(max(d.L, 1)), ptr)), (**C.float)(C.calloc(C.size_t(max(d.L, 1)), ptr))
	}
	f.rows = b
}

// step runs one decode step of active (in slot order, all in b) with C,
// feeding ids at positions pos, and samples each one's next token.
func (f *fusedModel) step(m *Model, b *BatchCache, active []*Sequence, ids, pos []int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desc == nil {
		return fmt.Errorf("decode: %w", errClosed)
	}
	n := int64(len(active))
	d, v := int64(m.Config.HeadDim), int64(m.Config.VocabSize)
	for i, p := range pos {
		if p >= int64(m.Config.ContextLength()) {
			return fmt.Errorf("decode: position %d is past the model's context of %d", p, m.Config.ContextLength())
		}
		if ids[i] < 0 || ids[i] >= v {
			return fmt.Errorf("decode: token %d outside the vocabulary [0,%d)", ids[i], v)
		}
	}
	f.grow(n)
	cids, cpos, cslot := unsafe.Slice((*int64)(unsafe.Pointer(f.ids)), n), unsafe.Slice((*int64)(unsafe.Pointer(f.pos)), n),
		unsafe.Slice((*int64)(unsafe.Pointer(f.slot)), n)
	copy(cids, ids)
	copy(cpos, pos)
	for i, sq := range active {
		cslot[i] = sq.slot
	}
	cs, sn := unsafe.Slice((*float32)(unsafe.Pointer(f.cos)), n*d), unsafe.Slice((*float32)(unsafe.Pointer(f.sin)), n*d)
	f.rope.values(pos, cs, sn)
	L := len(b.k)
	kc, vc := unsafe.Slice(f.kc, L), unsafe.Slice(f.vc, L)
	for l := range L {
		kc[l], vc[l] = (*C.float)(torch.DataPtr(b.k[l])), (*C.float)(torch.DataPtr(b.v[l]))
	}
	*f.st = C.kf_step{B: C.long(n), cap: C.long(b.capacity), ids: f.ids, pos: f.pos, slot: f.slot, kc: f.kc, vc: f.vc,
		cos: f.cos, sin: f.sin, scale: C.float(1 / math.Sqrt(float64(d))), logits: f.logits, best: f.best}
	profEvent(evCStart, 0)
	if C.kf_decode(f.desc, f.st, C.int(torch.Threads())) != 0 {
		return fmt.Errorf("decode: fused step: out of memory or threads")
	}
	profEvent(evCEnd, 0)
	logits := unsafe.Slice((*float32)(unsafe.Pointer(f.logits)), n*v)
	best := unsafe.Slice((*int64)(unsafe.Pointer(f.best)), n)
	for i, sq := range active {
		sq.length++
		if sq.sampler.greedy() {
			// The step's lm_head chose it as sampler.next would (kf_argmax).
			sq.accept(int(best[i]))
		} else {
			sq.accept(sq.sampler.next(logits[int64(i)*v : int64(i+1)*v]))
		}
	}
	profEvent(evSampleEnd, 0)
	return nil
}

// fusedProfileKinds names the phase kinds fusedProfile times, in
// decode_amd64.h's order.
var fusedProfileKinds = [...]string{"embed", "qkv", "attn", "o", "gateup", "down", "head"}

// fusedProfile switches the C step's per-phase timing on or off and returns
// the nanoseconds thread 0 spent in each phase kind since the last call
// (fusedProfileKinds), zeroing them. For benchmarks: a step is not
// otherwise timed.
func fusedProfile(on bool) [len(fusedProfileKinds)]int64 {
	var out [len(fusedProfileKinds)]int64
	for i := range out {
		out[i] = int64(C.kf_prof_ns[i])
		C.kf_prof_ns[i] = 0
	}
	C.kf_prof_on = 0
	if on {
		C.kf_prof_on = 1
	}
	return out
}

// kernelArgmax is the greedy choice decode_amd64.c makes in a step's
// lm_head over v cut in ranges of w columns (for tests): -1 when out of
// memory.
func kernelArgmax(v []float32, w int) int {
	if len(v) == 0 {
		return 0
	}
	return int(C.kf_argmax((*C.float)(unsafe.Pointer(&v[0])), C.long(len(v)), C.long(w)))
}

// runnableThreads is the machine's runnable threads now, as the C step
// reads them to choose how long its threads spin (-1: unreadable).
func runnableThreads() int { return int(C.kf_runnable()) }
