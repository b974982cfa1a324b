package model

// This file is the thin layer between the model and libtorch. It calls
// gotch's libtch bindings directly instead of gotch's ts wrappers, because
// each ts op mallocs a result slot it never frees (ts/tensor-generated.go)
// and hangs a 100 KB Go ballast and a finalizer on its result. Here a result
// slot is a Go variable, and every intermediate belongs to a scope that frees
// it explicitly: a generated token costs no Go garbage per op and leaks
// nothing. Parameters stay *ts.Tensor (callers train them); ops read their
// C handles.

/*
#cgo LDFLAGS: -ltorch_cpu -lc10
#include <stdlib.h>
#include <malloc.h>
// at::set_num_threads(int) and at::get_num_threads() from libtorch_cpu, by
// their C++ symbols: libtch declares C wrappers but gotch binds neither.
void _ZN2at15set_num_threadsEi(int);
int _ZN2at15get_num_threadsEv(void);
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// SetThreads sets libtorch's intra-op thread count for the process (what
// torch.set_num_threads does in Python); n <= 0 leaves it unchanged.
func SetThreads(n int) {
	if n > 0 {
		C._ZN2at15set_num_threadsEi(C.int(n))
	}
}

// TuneAllocator sets glibc's malloc for a long-running process that frees
// tensors of many sizes from many threads. Go runs libtorch calls on
// whichever OS thread is free, and glibc gives threads their own arenas
// (up to 8 per core) that each keep freed blocks: it caps them at two.
// And from then on, each Sequence.Release hands the free pages of the heap
// back to the system (malloc_trim), so that a finished sequence's KV cache
// and activations do not stay resident. It is process-wide: call it once
// at start, before loading a model. BenchmarkDecodeRSS measures the effect.
func TuneAllocator() {
	C.mallopt(C.M_ARENA_MAX, 2)
	trimOnRelease.Store(true)
}

var trimOnRelease atomic.Bool

// trimHeap returns free heap pages to the system if TuneAllocator asked.
func trimHeap() {
	if trimOnRelease.Load() {
		C.malloc_trim(0)
	}
}

// Threads reports libtorch's intra-op thread count.
func Threads() int { return int(C._ZN2at15get_num_threadsEv()) }

type ct = lib.Ctensor

// handle is the C tensor behind a gotch tensor.
func handle(t *ts.Tensor) ct {
	if t == nil {
		return nil
	}
	return ct(t.Ctensor())
}

// wrap hands a C tensor to gotch, which then owns (and eventually frees) it.
func wrap(c ct) *ts.Tensor { return ts.FromCtensor(unsafe.Pointer(c)) }

// lastErr fetches and clears libtorch's error for this OS thread; callers
// hold the thread (runtime.LockOSThread) across the op and this call.
func lastErr(op string) error {
	p := lib.GetAndResetLastErr()
	if p == nil {
		return fmt.Errorf("%s: libtorch failed without a message", op)
	}
	cs := (*C.char)(unsafe.Pointer(p))
	msg := C.GoString(cs)
	C.free(unsafe.Pointer(cs))
	// libtorch appends a C++ backtrace; the first lines carry the reason.
	if i := strings.Index(msg, "\nException raised from"); i > 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("%s: %s", op, strings.TrimSpace(msg))
}

// scope runs ops and owns their results until free or keep. After the
// first failure every op returns nil and the error stays in err, so a
// forward pass reads straight through and checks once.
type scope struct {
	owned []ct
	err   error
}

func (s *scope) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// own records a result; a nil result means libtorch raised.
func (s *scope) own(c ct, op string) ct {
	if c == nil {
		s.fail(lastErr(op))
		return nil
	}
	s.owned = append(s.owned, c)
	opCount.Add(1)
	return c
}

// opCount counts libtorch results made, for the benchmarks' ops/token.
var opCount atomic.Int64

// mark and release free everything made since mark except keep, which
// stays owned: how a layer drops its intermediates but passes its output on.
func (s *scope) mark() int { return len(s.owned) }

func (s *scope) release(mark int, keep ...ct) {
	kept := s.owned[:mark]
	for _, c := range s.owned[mark:] {
		if containsCt(keep, c) {
			kept = append(kept, c)
			continue
		}
		lib.AtFree(c)
	}
	clear(s.owned[len(kept):])
	s.owned = kept
}

// detach takes c out of the scope: the caller now frees it.
func (s *scope) detach(c ct) ct {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == c {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			return c
		}
	}
	return c
}

func (s *scope) free() { s.release(0) }

func containsCt(list []ct, c ct) bool {
	for _, k := range list {
		if k == c {
			return true
		}
	}
	return false
}

func (s *scope) ok() bool { return s.err == nil }

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func (s *scope) matmul(a, b ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgMatmul(&out, a, b)
	return s.own(out, "matmul")
}

// linear is x @ w^T + b; b may be nil.
func (s *scope) linear(x, w, b ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgLinear(&out, x, w, b)
	return s.own(out, "linear")
}

func (s *scope) addmm(b, x, w ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgAddmm(&out, b, x, w)
	return s.own(out, "addmm")
}

func (s *scope) view(x ct, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgView(&out, x, dims, len(dims))
	return s.own(out, "view")
}

func (s *scope) reshape(x ct, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgReshape(&out, x, dims, len(dims))
	return s.own(out, "reshape")
}

func (s *scope) transpose(x ct, d0, d1 int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgTranspose(&out, x, d0, d1)
	return s.own(out, "transpose")
}

func (s *scope) narrow(x ct, dim, start, length int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgNarrow(&out, x, dim, start, length)
	return s.own(out, "narrow")
}

func (s *scope) selectAt(x ct, dim, index int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgSelect(&out, x, dim, index)
	return s.own(out, "select")
}

func (s *scope) unsqueeze(x ct, dim int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgUnsqueeze(&out, x, dim)
	return s.own(out, "unsqueeze")
}

func (s *scope) expand(x ct, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgExpand(&out, x, dims, len(dims), 0)
	return s.own(out, "expand")
}

func (s *scope) add(a, b ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgAdd(&out, a, b)
	return s.own(out, "add")
}

func (s *scope) mul(a, b ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgMul(&out, a, b)
	return s.own(out, "mul")
}

// addcmul is a + b*c.
func (s *scope) addcmul(a, b, c ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgAddcmul(&out, a, b, c)
	return s.own(out, "addcmul")
}

// baddbmm is beta*a + alpha*(b1 @ b2), batched; with beta 0, a only
// needs to broadcast.
func (s *scope) baddbmm(a, b1, b2 ct, beta, alpha float64) ct {
	if !s.ok() {
		return nil
	}
	sb, sa := lib.AtsFloat(beta), lib.AtsFloat(alpha)
	defer lib.AtsFree(sb)
	defer lib.AtsFree(sa)
	var out ct
	lib.AtgBaddbmm(&out, a, b1, b2, sb, sa)
	return s.own(out, "baddbmm")
}

func (s *scope) bmm(a, b ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgBmm(&out, a, b)
	return s.own(out, "bmm")
}

// softmax over dim, computed in dt.
func (s *scope) softmax(x ct, dim int64, dt gotch.DType) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgSoftmax(&out, x, dim, int32(dt.CInt()))
	return s.own(out, "softmax")
}

func (s *scope) addScalar(a ct, v float64) ct {
	if !s.ok() {
		return nil
	}
	sc := lib.AtsFloat(v)
	defer lib.AtsFree(sc)
	var out ct
	lib.AtgAddScalar(&out, a, sc)
	return s.own(out, "add")
}

func (s *scope) mulScalar(a ct, v float64) ct {
	if !s.ok() {
		return nil
	}
	sc := lib.AtsFloat(v)
	defer lib.AtsFree(sc)
	var out ct
	lib.AtgMulScalar(&out, a, sc)
	return s.own(out, "mul")
}

func (s *scope) powScalar(a ct, v float64) ct {
	if !s.ok() {
		return nil
	}
	sc := lib.AtsFloat(v)
	defer lib.AtsFree(sc)
	var out ct
	lib.AtgPowTensorScalar(&out, a, sc)
	return s.own(out, "pow")
}

func (s *scope) meanLast(x ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	dims := []int64{-1}
	lib.AtgMeanDim(&out, x, dims, 1, 1, -1)
	return s.own(out, "mean")
}

func (s *scope) rsqrt(x ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgRsqrt(&out, x)
	return s.own(out, "rsqrt")
}

func (s *scope) silu(x ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgSilu(&out, x)
	return s.own(out, "silu")
}

// gelu with approximate "none" or "tanh".
func (s *scope) gelu(x ct, approximate string) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgGelu(&out, x, approximate)
	return s.own(out, "gelu")
}

func (s *scope) dropout(x ct, p float64, train bool) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgDropout(&out, x, p, b2i(train))
	return s.own(out, "dropout")
}

func (s *scope) layerNorm(x, w, b ct, n int64, eps float64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	shape := []int64{n}
	lib.AtgLayerNorm(&out, x, shape, 1, w, b, eps, 1)
	return s.own(out, "layer_norm")
}

func (s *scope) embedding(w, ids ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgEmbedding(&out, w, ids, -1, 0, 0)
	return s.own(out, "embedding")
}

func (s *scope) indexSelect(x ct, dim int64, idx ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgIndexSelect(&out, x, dim, idx)
	return s.own(out, "index_select")
}

func (s *scope) stack(xs []ct, dim int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgStack(&out, xs, len(xs), dim)
	return s.own(out, "stack")
}

func (s *scope) cat(xs []ct, dim int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgCat(&out, xs, len(xs), dim)
	return s.own(out, "cat")
}

// sdpa is scaled_dot_product_attention; mask (bool, true = attend) may be
// nil; scale <= 0 means 1/sqrt(head_dim).
func (s *scope) sdpa(q, k, v, mask ct, dropout float64, causal bool, scale float64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	null := 1
	if scale > 0 {
		null = 0
	}
	lib.AtgScaledDotProductAttention(&out, q, k, v, mask, dropout, b2i(causal), scale, null)
	return s.own(out, "scaled_dot_product_attention")
}

// to converts to dtype on device (a no-op view when both already match).
func (s *scope) to(x ct, dev gotch.Device, dt gotch.DType) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgToDevice(&out, x, int32(dev.CInt()), int32(dt.CInt()), 0, 0)
	return s.own(out, "to")
}

func (s *scope) contiguous(x ct) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgContiguous(&out, x)
	return s.own(out, "contiguous")
}

func (s *scope) zeros(dev gotch.Device, dt gotch.DType, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	var out ct
	lib.AtgZeros(&out, dims, len(dims), int32(dt.CInt()), int32(dev.CInt()))
	return s.own(out, "zeros")
}

// copyInto is dst.copy_(src).
func (s *scope) copyInto(dst, src ct) {
	if !s.ok() {
		return
	}
	lib.AtCopy_(dst, src)
	if p := lib.GetAndResetLastErr(); p != nil {
		cs := (*C.char)(unsafe.Pointer(p))
		s.fail(fmt.Errorf("copy_: %s", strings.SplitN(C.GoString(cs), "\n", 2)[0]))
		C.free(unsafe.Pointer(cs))
	}
}

// int64s makes an int64 tensor of the given shape on dev.
func (s *scope) int64s(dev gotch.Device, data []int64, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	c := s.own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), 8, int(gotch.Int64.CInt())), "tensor_of_data")
	if dev != gotch.CPU {
		return s.to(c, dev, gotch.Int64)
	}
	return c
}

// bools makes a bool tensor of the given shape on dev.
func (s *scope) bools(dev gotch.Device, data []bool, dims ...int64) ct {
	if !s.ok() {
		return nil
	}
	c := s.own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), 1, int(gotch.Bool.CInt())), "tensor_of_data")
	if dev != gotch.CPU {
		return s.to(c, dev, gotch.Bool)
	}
	return c
}

// float32s copies x (any float dtype, any device) into a Go slice.
func (s *scope) float32s(x ct) []float32 {
	if !s.ok() {
		return nil
	}
	c := s.contiguous(s.to(x, gotch.CPU, gotch.Float))
	if !s.ok() {
		return nil
	}
	n := numel(shapeOf(c))
	out := make([]float32, n)
	if n > 0 {
		lib.AtCopyData(c, unsafe.Pointer(&out[0]), uint(n), 4)
	}
	return out
}

func ptrOf[T any](data []T) unsafe.Pointer { return unsafe.Pointer(&data[0]) }

// drop frees c now and forgets it.
func (s *scope) drop(c ct) {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == c {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			lib.AtFree(c)
			return
		}
	}
}

func shapeOf(c ct) []int64 {
	if c == nil {
		return nil
	}
	n := lib.AtDim(c)
	dims := make([]int64, n)
	if n > 0 {
		lib.AtShape(c, unsafe.Pointer(&dims[0]))
	}
	return dims
}

func numel(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// errClosed is returned by a Model used after Close.
var errClosed = errors.New("model is closed")

// copyBytes copies a contiguous CPU tensor's raw bytes into dst.
func copyBytes(c ct, dst []byte, eltSize uint) {
	lib.AtCopyData(c, unsafe.Pointer(&dst[0]), uint(len(dst))/eltSize, eltSize)
}
