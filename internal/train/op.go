package train

// This file is the thin layer between training and libtorch, in the same
// spirit as internal/model's: gotch's libtch bindings called directly, every
// result a C handle owned by an ops value and freed explicitly, so a
// training step makes no Go tensor (no 100 KB ballast, no finalizer) and
// leaks no result slot. Callers hold the OS thread (runtime.LockOSThread)
// across ops and the error check, because libtorch's last error is per
// thread.

/*
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>
// From gotch's libtch (torch_api.cpp), which gotch declares but does not bind.
void at_manual_seed(int64_t);
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

type ct = lib.Ctensor

// manualSeed seeds libtorch's default generator (torch.manual_seed).
func manualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// handle is the C tensor behind a gotch tensor.
func handle(t *ts.Tensor) ct {
	if t == nil {
		return nil
	}
	return ct(t.Ctensor())
}

// wrap hands a C tensor to gotch, which then owns it. Used once per
// adapter tensor, never per step.
func wrap(c ct) *ts.Tensor { return ts.FromCtensor(unsafe.Pointer(c)) }

// ops runs libtorch ops and owns their results until free. After the first
// failure every op is a no-op returning nil, and err keeps the reason.
type ops struct {
	owned []ct
	err   error
}

func lastErr(op string) error {
	p := lib.GetAndResetLastErr()
	if p == nil {
		return fmt.Errorf("%s: libtorch failed without a message", op)
	}
	cs := (*C.char)(unsafe.Pointer(p))
	msg := C.GoString(cs)
	C.free(unsafe.Pointer(cs))
	if i := strings.Index(msg, "\nException raised from"); i > 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("%s: %s", op, strings.TrimSpace(msg))
}

func (o *ops) ok() bool { return o.err == nil }

func (o *ops) own(c ct, op string) ct {
	if c == nil {
		if o.err == nil {
			o.err = lastErr(op)
		}
		return nil
	}
	o.owned = append(o.owned, c)
	return c
}

// check records a libtorch error raised by an op whose result the caller
// does not keep.
func (o *ops) check(op string) {
	if p := lib.GetAndResetLastErr(); p != nil && o.err == nil {
		cs := (*C.char)(unsafe.Pointer(p))
		msg := C.GoString(cs)
		C.free(unsafe.Pointer(cs))
		if i := strings.Index(msg, "\nException raised from"); i > 0 {
			msg = msg[:i]
		}
		o.err = fmt.Errorf("%s: %s", op, strings.TrimSpace(msg))
	}
}

// free frees every result.
func (o *ops) free() {
	for _, c := range o.owned {
		lib.AtFree(c)
	}
	clear(o.owned)
	o.owned = o.owned[:0]
}

// keep takes c out of the ops: the caller frees it.
func (o *ops) keep(c ct) ct {
	for i := len(o.owned) - 1; i >= 0; i-- {
		if o.owned[i] == c {
			o.owned = append(o.owned[:i], o.owned[i+1:]...)
			break
		}
	}
	return c
}

// inplace runs an in-place op and frees the extra handle libtch returns.
func (o *ops) inplace(op string, f func(out *ct)) {
	if !o.ok() {
		return
	}
	var out ct
	f(&out)
	if out == nil {
		o.err = lastErr(op)
		return
	}
	lib.AtFree(out)
}

func (o *ops) unary(op string, f func(out *ct)) ct {
	if !o.ok() {
		return nil
	}
	var out ct
	f(&out)
	return o.own(out, op)
}

func scalar(v float64, f func(lib.Cscalar)) {
	s := lib.AtsFloat(v)
	f(s)
	lib.AtsFree(s)
}

func (o *ops) grad(p ct) ct {
	return o.unary("grad", func(out *ct) { lib.AtgGrad(out, p) })
}

func (o *ops) mul(a, b ct) ct { return o.unary("mul", func(out *ct) { lib.AtgMul(out, a, b) }) }
func (o *ops) div(a, b ct) ct { return o.unary("div", func(out *ct) { lib.AtgDiv(out, a, b) }) }
func (o *ops) sqrt(a ct) ct   { return o.unary("sqrt", func(out *ct) { lib.AtgSqrt(out, a) }) }
func (o *ops) norm(a ct) ct   { return o.unary("norm", func(out *ct) { lib.AtgNorm(out, a) }) }
func (o *ops) matmul(a, b ct) ct {
	return o.unary("matmul", func(out *ct) { lib.AtgMatmul(out, a, b) })
}
func (o *ops) transpose(a ct, d0, d1 int64) ct {
	return o.unary("transpose", func(out *ct) { lib.AtgTranspose(out, a, d0, d1) })
}
func (o *ops) stack(xs []ct) ct {
	return o.unary("stack", func(out *ct) { lib.AtgStack(out, xs, len(xs), 0) })
}
func (o *ops) zerosLike(a ct) ct {
	return o.unary("zeros_like", func(out *ct) { lib.AtgZerosLike(out, a) })
}
func (o *ops) divScalar(a ct, v float64) ct {
	return o.unary("div", func(out *ct) { scalar(v, func(s lib.Cscalar) { lib.AtgDivScalar(out, a, s) }) })
}
func (o *ops) to(a ct, dev gotch.Device, dt gotch.DType) ct {
	return o.unary("to", func(out *ct) { lib.AtgToDevice(out, a, int32(dev.CInt()), int32(dt.CInt()), 0, 0) })
}
func (o *ops) contiguous(a ct) ct {
	return o.unary("contiguous", func(out *ct) { lib.AtgContiguous(out, a) })
}
func (o *ops) crossEntropySum(logits, target ct) ct {
	return o.unary("cross_entropy", func(out *ct) { lib.AtgCrossEntropyLoss(out, logits, target, nil, 2, -100, 0) })
}
func (o *ops) requiresGrad(a ct, on bool) ct {
	v := int32(0)
	if on {
		v = 1
	}
	return o.unary("requires_grad_", func(out *ct) { lib.AtgRequiresGrad_(out, a, v) })
}

func (o *ops) mulScalar_(a ct, v float64) {
	o.inplace("mul_", func(out *ct) { scalar(v, func(s lib.Cscalar) { lib.AtgMulScalar_(out, a, s) }) })
}
func (o *ops) addScalar_(a ct, v float64) {
	o.inplace("add_", func(out *ct) { scalar(v, func(s lib.Cscalar) { lib.AtgAddScalar_(out, a, s) }) })
}
func (o *ops) divScalar_(a ct, v float64) {
	o.inplace("div_", func(out *ct) { scalar(v, func(s lib.Cscalar) { lib.AtgDivScalar_(out, a, s) }) })
}
func (o *ops) add_(a, b ct) { o.inplace("add_", func(out *ct) { lib.AtgAdd_(out, a, b) }) }
func (o *ops) mul_(a, b ct) { o.inplace("mul_", func(out *ct) { lib.AtgMul_(out, a, b) }) }
func (o *ops) zero_(a ct)   { o.inplace("zero_", func(out *ct) { lib.AtgZero_(out, a) }) }
func (o *ops) copy_(dst, src ct) {
	if o.ok() {
		lib.AtCopy_(dst, src)
		o.check("copy_")
	}
}
func (o *ops) lerp_(a, end ct, w float64) {
	o.inplace("lerp_", func(out *ct) { scalar(w, func(s lib.Cscalar) { lib.AtgLerp_(out, a, end, s) }) })
}

// int64s makes an int64 tensor on dev from Go values.
func (o *ops) int64s(dev gotch.Device, data []int64, dims ...int64) ct {
	if !o.ok() {
		return nil
	}
	c := o.own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), 8, int(gotch.Int64.CInt())), "tensor_of_data")
	if dev != gotch.CPU {
		return o.to(c, dev, gotch.Int64)
	}
	return c
}

// float32s makes a float32 tensor on dev from Go values (copied).
func (o *ops) float32s(dev gotch.Device, data []float32, dims ...int64) ct {
	if !o.ok() {
		return nil
	}
	c := o.own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), 4, int(gotch.Float.CInt())), "tensor_of_data")
	if dev != gotch.CPU {
		return o.to(c, dev, gotch.Float)
	}
	return c
}

// readFloat32s copies any float tensor into Go as float32.
func (o *ops) readFloat32s(x ct) []float32 {
	c := o.contiguous(o.to(x, gotch.CPU, gotch.Float))
	if !o.ok() {
		return nil
	}
	n := numel(shapeOf(c))
	out := make([]float32, n)
	if n > 0 {
		lib.AtCopyData(c, unsafe.Pointer(&out[0]), uint(n), 4)
	}
	return out
}

// item reads a one-element tensor as float64.
func (o *ops) item(x ct) float64 {
	if !o.ok() {
		return 0
	}
	v := lib.AtDoubleValueAtIndexes(x, nil, 0)
	o.check("item")
	return v
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

// noGrad runs f with autograd off.
func noGrad(f func()) {
	prev := lib.AtGradSetEnabled(0)
	defer lib.AtGradSetEnabled(prev)
	f()
}

// TuneAllocator sets glibc's malloc for a training process: freed
// activations stay in the heap for the next step (a 32 MB mmap threshold,
// the largest glibc allows, and no trimming below 1 GB) instead of going
// back to the kernel and faulting in again, zeroed, every step. It is
// process-wide and keeps RSS at its peak; components/finetune calls it at
// start. Measured on the demo model: a third of the page faults and of the
// system time.
func TuneAllocator() {
	C.mallopt(C.M_MMAP_THRESHOLD, 32<<20)
	C.mallopt(C.M_TRIM_THRESHOLD, 1<<30)
	C.mallopt(C.M_TOP_PAD, 64<<20)
}
