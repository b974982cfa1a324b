package torch

import (
	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
)

// op runs one libtch call that writes its result into out, unless an
// earlier op failed, and owns the result.
func (s *Scope) op(name string, call func(out *Tensor)) Tensor {
	if s.err != nil {
		return nil
	}
	var out Tensor
	call(&out)
	return s.Own(out, name)
}

// inPlace runs an in-place op (x.op_(...)) and frees the second handle to
// x that libtch returns.
func (s *Scope) inPlace(name string, call func(out *Tensor)) {
	if s.err != nil {
		return
	}
	var out Tensor
	call(&out)
	if out == nil {
		s.Own(nil, name)
		return
	}
	lib.AtFree(out)
}

// withScalar passes v to f as a libtorch Scalar.
func withScalar(v float64, f func(lib.Cscalar)) {
	sc := lib.AtsFloat(v)
	f(sc)
	lib.AtsFree(sc)
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Matmul is a @ b.
func (s *Scope) Matmul(a, b Tensor) Tensor {
	return s.op("matmul", func(out *Tensor) { lib.AtgMatmul(out, a, b) })
}

// Linear is x @ w^T + b; b may be nil.
func (s *Scope) Linear(x, w, b Tensor) Tensor {
	return s.op("linear", func(out *Tensor) { lib.AtgLinear(out, x, w, b) })
}

// Addmm is b + x @ w.
func (s *Scope) Addmm(b, x, w Tensor) Tensor {
	return s.op("addmm", func(out *Tensor) { lib.AtgAddmm(out, b, x, w) })
}

// Bmm is the batched a @ b.
func (s *Scope) Bmm(a, b Tensor) Tensor {
	return s.op("bmm", func(out *Tensor) { lib.AtgBmm(out, a, b) })
}

// Baddbmm is beta*a + alpha*(b1 @ b2), batched; with beta 0, a only needs
// to broadcast.
func (s *Scope) Baddbmm(a, b1, b2 Tensor, beta, alpha float64) Tensor {
	return s.op("baddbmm", func(out *Tensor) {
		withScalar(beta, func(sb lib.Cscalar) {
			withScalar(alpha, func(sa lib.Cscalar) { lib.AtgBaddbmm(out, a, b1, b2, sb, sa) })
		})
	})
}

// View is x.view(dims...).
func (s *Scope) View(x Tensor, dims ...int64) Tensor {
	return s.op("view", func(out *Tensor) { lib.AtgView(out, x, dims, len(dims)) })
}

// Reshape is x.reshape(dims...).
func (s *Scope) Reshape(x Tensor, dims ...int64) Tensor {
	return s.op("reshape", func(out *Tensor) { lib.AtgReshape(out, x, dims, len(dims)) })
}

// Transpose swaps dimensions d0 and d1 (a view).
func (s *Scope) Transpose(x Tensor, d0, d1 int64) Tensor {
	return s.op("transpose", func(out *Tensor) { lib.AtgTranspose(out, x, d0, d1) })
}

// Narrow is x[..., start:start+length, ...] along dim (a view).
func (s *Scope) Narrow(x Tensor, dim, start, length int64) Tensor {
	return s.op("narrow", func(out *Tensor) { lib.AtgNarrow(out, x, dim, start, length) })
}

// Select is x[..., index, ...] along dim (a view, one dimension fewer).
func (s *Scope) Select(x Tensor, dim, index int64) Tensor {
	return s.op("select", func(out *Tensor) { lib.AtgSelect(out, x, dim, index) })
}

// Unsqueeze inserts a dimension of size 1 at dim.
func (s *Scope) Unsqueeze(x Tensor, dim int64) Tensor {
	return s.op("unsqueeze", func(out *Tensor) { lib.AtgUnsqueeze(out, x, dim) })
}

// Expand broadcasts x to dims (a view).
func (s *Scope) Expand(x Tensor, dims ...int64) Tensor {
	return s.op("expand", func(out *Tensor) { lib.AtgExpand(out, x, dims, len(dims), 0) })
}

// Contiguous is x, or a contiguous copy of it.
func (s *Scope) Contiguous(x Tensor) Tensor {
	return s.op("contiguous", func(out *Tensor) { lib.AtgContiguous(out, x) })
}

// To converts to dtype on dev (a no-op alias when both already match).
func (s *Scope) To(x Tensor, dev gotch.Device, dt gotch.DType) Tensor {
	return s.op("to", func(out *Tensor) { lib.AtgToDevice(out, x, int32(dev.CInt()), int32(dt.CInt()), 0, 0) })
}

// Add is a + b.
func (s *Scope) Add(a, b Tensor) Tensor {
	return s.op("add", func(out *Tensor) { lib.AtgAdd(out, a, b) })
}

// Mul is a * b.
func (s *Scope) Mul(a, b Tensor) Tensor {
	return s.op("mul", func(out *Tensor) { lib.AtgMul(out, a, b) })
}

// Div is a / b.
func (s *Scope) Div(a, b Tensor) Tensor {
	return s.op("div", func(out *Tensor) { lib.AtgDiv(out, a, b) })
}

// Addcmul is a + b*c.
func (s *Scope) Addcmul(a, b, c Tensor) Tensor {
	return s.op("addcmul", func(out *Tensor) { lib.AtgAddcmul(out, a, b, c) })
}

// AddScalar is a + v.
func (s *Scope) AddScalar(a Tensor, v float64) Tensor {
	return s.op("add", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgAddScalar(out, a, sc) }) })
}

// MulScalar is a * v.
func (s *Scope) MulScalar(a Tensor, v float64) Tensor {
	return s.op("mul", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgMulScalar(out, a, sc) }) })
}

// DivScalar is a / v.
func (s *Scope) DivScalar(a Tensor, v float64) Tensor {
	return s.op("div", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgDivScalar(out, a, sc) }) })
}

// PowScalar is a ** v.
func (s *Scope) PowScalar(a Tensor, v float64) Tensor {
	return s.op("pow", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgPowTensorScalar(out, a, sc) }) })
}

// MeanLast is the mean over the last dimension, kept as size 1.
func (s *Scope) MeanLast(x Tensor) Tensor {
	dims := []int64{-1}
	return s.op("mean", func(out *Tensor) { lib.AtgMeanDim(out, x, dims, 1, 1, -1) })
}

// Sum is the sum of all of x's elements, in x's dtype.
func (s *Scope) Sum(x Tensor) Tensor {
	return s.op("sum", func(out *Tensor) { lib.AtgSum(out, x, -1) })
}

// Rsqrt is 1/sqrt(x).
func (s *Scope) Rsqrt(x Tensor) Tensor {
	return s.op("rsqrt", func(out *Tensor) { lib.AtgRsqrt(out, x) })
}

// Sqrt is sqrt(x).
func (s *Scope) Sqrt(x Tensor) Tensor {
	return s.op("sqrt", func(out *Tensor) { lib.AtgSqrt(out, x) })
}

// Norm is the 2-norm of all of x's elements.
func (s *Scope) Norm(x Tensor) Tensor {
	return s.op("norm", func(out *Tensor) { lib.AtgNorm(out, x) })
}

// Silu is x * sigmoid(x).
func (s *Scope) Silu(x Tensor) Tensor {
	return s.op("silu", func(out *Tensor) { lib.AtgSilu(out, x) })
}

// Gelu with approximate "none" or "tanh".
func (s *Scope) Gelu(x Tensor, approximate string) Tensor {
	return s.op("gelu", func(out *Tensor) { lib.AtgGelu(out, x, approximate) })
}

// Dropout zeroes elements with probability p and scales the rest by
// 1/(1-p) when train is set; it draws from ManualSeed's generator.
func (s *Scope) Dropout(x Tensor, p float64, train bool) Tensor {
	return s.op("dropout", func(out *Tensor) { lib.AtgDropout(out, x, p, b2i(train)) })
}

// Softmax over dim, computed in dt.
func (s *Scope) Softmax(x Tensor, dim int64, dt gotch.DType) Tensor {
	return s.op("softmax", func(out *Tensor) { lib.AtgSoftmax(out, x, dim, int32(dt.CInt())) })
}

// LayerNorm normalises the last dimension (of size n) with weight w and
// bias b.
func (s *Scope) LayerNorm(x, w, b Tensor, n int64, eps float64) Tensor {
	shape := []int64{n}
	return s.op("layer_norm", func(out *Tensor) { lib.AtgLayerNorm(out, x, shape, 1, w, b, eps, 1) })
}

// Embedding looks up the rows ids of w.
func (s *Scope) Embedding(w, ids Tensor) Tensor {
	return s.op("embedding", func(out *Tensor) { lib.AtgEmbedding(out, w, ids, -1, 0, 0) })
}

// IndexSelect takes the entries idx of x along dim.
func (s *Scope) IndexSelect(x Tensor, dim int64, idx Tensor) Tensor {
	return s.op("index_select", func(out *Tensor) { lib.AtgIndexSelect(out, x, dim, idx) })
}

// IndexCopy is x.index_copy(dim, index, source), a new tensor.
func (s *Scope) IndexCopy(x Tensor, dim int64, index, source Tensor) Tensor {
	return s.op("index_copy", func(out *Tensor) { lib.AtgIndexCopy(out, x, dim, index, source) })
}

// Stack stacks xs along a new dimension dim.
func (s *Scope) Stack(xs []Tensor, dim int64) Tensor {
	return s.op("stack", func(out *Tensor) { lib.AtgStack(out, xs, len(xs), dim) })
}

// Cat concatenates xs along dim.
func (s *Scope) Cat(xs []Tensor, dim int64) Tensor {
	return s.op("cat", func(out *Tensor) { lib.AtgCat(out, xs, len(xs), dim) })
}

// SDPA is scaled_dot_product_attention; mask (bool, true = attend) may be
// nil; scale <= 0 means 1/sqrt(head_dim).
func (s *Scope) SDPA(q, k, v, mask Tensor, dropout float64, causal bool, scale float64) Tensor {
	null := 1
	if scale > 0 {
		null = 0
	}
	return s.op("scaled_dot_product_attention", func(out *Tensor) {
		lib.AtgScaledDotProductAttention(out, q, k, v, mask, dropout, b2i(causal), scale, null)
	})
}

// CrossEntropySum is the summed cross-entropy of logits [N,V] against
// target [N] (ignore index -100).
func (s *Scope) CrossEntropySum(logits, target Tensor) Tensor {
	return s.op("cross_entropy", func(out *Tensor) { lib.AtgCrossEntropyLoss(out, logits, target, nil, 2, -100, 0) })
}

// Zeros is a zero tensor of dims on dev in dt.
func (s *Scope) Zeros(dev gotch.Device, dt gotch.DType, dims ...int64) Tensor {
	return s.op("zeros", func(out *Tensor) { lib.AtgZeros(out, dims, len(dims), int32(dt.CInt()), int32(dev.CInt())) })
}

// ZerosLike is a zero tensor of a's shape, dtype and device.
func (s *Scope) ZerosLike(a Tensor) Tensor {
	return s.op("zeros_like", func(out *Tensor) { lib.AtgZerosLike(out, a) })
}

// Empty is an uninitialised float32 CPU tensor.
func (s *Scope) Empty(dims ...int64) Tensor {
	return s.op("empty", func(out *Tensor) {
		lib.AtgEmpty(out, dims, len(dims), int32(gotch.Float.CInt()), int32(gotch.CPU.CInt()))
	})
}

// Grad is p's gradient (an undefined tensor when it has none: see
// Defined).
func (s *Scope) Grad(p Tensor) Tensor {
	return s.op("grad", func(out *Tensor) { lib.AtgGrad(out, p) })
}

// RequiresGrad sets whether autograd records ops on a (a leaf) and
// returns a second handle to it.
func (s *Scope) RequiresGrad(a Tensor, on bool) Tensor {
	return s.op("requires_grad_", func(out *Tensor) { lib.AtgRequiresGrad_(out, a, b2i(on)) })
}

// Backward back-propagates from the one-element tensor x.
func (s *Scope) Backward(x Tensor) {
	if s.err == nil {
		lib.AtBackward(x, 0, 0)
		s.Check("backward")
	}
}

// Defined reports whether c holds a tensor (a grad that was never
// computed does not).
func Defined(c Tensor) bool { return lib.AtDefined(c) }

// CopyInto is dst.copy_(src).
func (s *Scope) CopyInto(dst, src Tensor) {
	if s.err == nil {
		lib.AtCopy_(dst, src)
		s.Check("copy_")
	}
}

// IndexCopyInPlace is x.index_copy_(dim, index, source).
func (s *Scope) IndexCopyInPlace(x Tensor, dim int64, index, source Tensor) {
	s.inPlace("index_copy_", func(out *Tensor) { lib.AtgIndexCopy_(out, x, dim, index, source) })
}

// AddInPlace is a.add_(b).
func (s *Scope) AddInPlace(a, b Tensor) {
	s.inPlace("add_", func(out *Tensor) { lib.AtgAdd_(out, a, b) })
}

// AddScalarInPlace is a.add_(v).
func (s *Scope) AddScalarInPlace(a Tensor, v float64) {
	s.inPlace("add_", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgAddScalar_(out, a, sc) }) })
}

// MulScalarInPlace is a.mul_(v).
func (s *Scope) MulScalarInPlace(a Tensor, v float64) {
	s.inPlace("mul_", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgMulScalar_(out, a, sc) }) })
}

// DivScalarInPlace is a.div_(v).
func (s *Scope) DivScalarInPlace(a Tensor, v float64) {
	s.inPlace("div_", func(out *Tensor) { withScalar(v, func(sc lib.Cscalar) { lib.AtgDivScalar_(out, a, sc) }) })
}

// LerpInPlace is a.lerp_(end, w).
func (s *Scope) LerpInPlace(a, end Tensor, w float64) {
	s.inPlace("lerp_", func(out *Tensor) { withScalar(w, func(sc lib.Cscalar) { lib.AtgLerp_(out, a, end, sc) }) })
}

// ZeroInPlace is a.zero_().
func (s *Scope) ZeroInPlace(a Tensor) {
	s.inPlace("zero_", func(out *Tensor) { lib.AtgZero_(out, a) })
}
