package train

import (
	"fmt"
	"math"

	"github.com/kfllm/kfllm/internal/torch"
)

// param is one trainable tensor with its AdamW state, float32 like the
// parameter on CPU (and kept float32 as master state on CUDA too, see
// adamW.step).
type param struct {
	name    string
	t       torch.Tensor // the parameter (owned by the model or the adapter)
	noDecay bool
	m, v    torch.Tensor // exp_avg, exp_avg_sq (owned here)
}

// adamW is torch.optim.AdamW (decoupled weight decay), single-tensor
// variant, step for step as torch 2.1 computes it on CPU:
//
//	p *= 1 - lr*wd
//	m.lerp_(g, 1-b1); v = v*b2 + (1-b2)*g*g
//	p += -lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
type adamW struct {
	params            []*param
	beta1, beta2, eps float64
	weightDecay       float64
	steps             int
}

func newAdamW(params []*param, weightDecay float64) (*adamW, error) {
	opt := &adamW{params: params, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: weightDecay}
	var o torch.Scope
	defer o.Free()
	for _, p := range params {
		p.m = o.Detach(o.ZerosLike(p.t))
		p.v = o.Detach(o.ZerosLike(p.t))
	}
	if !o.OK() {
		opt.close()
		return nil, fmt.Errorf("optimizer state: %w", o.Err())
	}
	return opt, nil
}

func (a *adamW) close() {
	for _, p := range a.params {
		if p.m != nil {
			torch.Free(p.m)
		}
		if p.v != nil {
			torch.Free(p.v)
		}
		p.m, p.v = nil, nil
	}
}

// step applies one update at learning rate lr from the parameters' grads.
func (a *adamW) step(lr float64) error {
	a.steps++
	bc1 := 1 - math.Pow(a.beta1, float64(a.steps))
	bc2 := 1 - math.Pow(a.beta2, float64(a.steps))
	stepSize := lr / bc1
	bc2Sqrt := math.Sqrt(bc2)
	var o torch.Scope
	defer o.Free()
	torch.NoGrad(func() {
		for _, p := range a.params {
			g := o.Grad(p.t)
			if !o.OK() || !torch.Defined(g) {
				continue // unused this step: no grad, no update (as torch)
			}
			if !p.noDecay && a.weightDecay != 0 {
				o.MulScalarInPlace(p.t, 1-lr*a.weightDecay)
			}
			o.LerpInPlace(p.m, g, 1-a.beta1)
			o.MulScalarInPlace(p.v, a.beta2)
			gg := o.Mul(g, g)
			o.MulScalarInPlace(gg, 1-a.beta2)
			o.AddInPlace(p.v, gg)
			denom := o.Sqrt(p.v)
			o.DivScalarInPlace(denom, bc2Sqrt)
			o.AddScalarInPlace(denom, a.eps)
			upd := o.Div(p.m, denom)
			o.MulScalarInPlace(upd, -stepSize)
			o.AddInPlace(p.t, upd)
			o.Free()
		}
	})
	if !o.OK() {
		return fmt.Errorf("adamw step: %w", o.Err())
	}
	return nil
}

// zeroGrad zeroes every parameter's grad in place.
func (a *adamW) zeroGrad() error {
	var o torch.Scope
	defer o.Free()
	for _, p := range a.params {
		g := o.Grad(p.t)
		if o.OK() && torch.Defined(g) {
			o.ZeroInPlace(g)
		}
	}
	if !o.OK() {
		return fmt.Errorf("zero grad: %w", o.Err())
	}
	return nil
}

// clipGradNorm is torch.nn.utils.clip_grad_norm_ (norm type 2): it returns
// the total norm of all grads before clipping and scales them in place by
// min(1, maxNorm/(total+1e-6)). maxNorm <= 0 only measures.
func clipGradNorm(params []*param, maxNorm float64) (float64, error) {
	var o torch.Scope
	defer o.Free()
	var norms []torch.Tensor
	var grads []torch.Tensor
	for _, p := range params {
		g := o.Grad(p.t)
		if o.OK() && torch.Defined(g) {
			grads = append(grads, g)
			norms = append(norms, o.Norm(g))
		}
	}
	if len(norms) == 0 || !o.OK() {
		if o.Err() != nil {
			return 0, fmt.Errorf("clip grad norm: %w", o.Err())
		}
		return 0, nil
	}
	total := o.Item(o.Norm(o.Stack(norms, 0)))
	if maxNorm > 0 && !math.IsNaN(total) {
		coef := maxNorm / (total + 1e-6)
		if coef < 1 {
			torch.NoGrad(func() {
				for _, g := range grads {
					o.MulScalarInPlace(g, coef)
				}
			})
		}
	}
	if !o.OK() {
		return 0, fmt.Errorf("clip grad norm: %w", o.Err())
	}
	return total, nil
}

// schedule is the learning rate of the Hugging Face schedulers
// (get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup) at a
// 0-based optimizer step: linear warmup from 0, then linear decay to 0 or a
// half cosine.
func schedule(kind string, base float64, step, warmup, total int) float64 {
	if step < warmup {
		return base * float64(step) / float64(max(1, warmup))
	}
	progress := float64(step-warmup) / float64(max(1, total-warmup))
	switch kind {
	case "cosine":
		return base * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	case "constant":
		return base
	default:
		return base * max(0, float64(total-step)/float64(max(1, total-warmup)))
	}
}
