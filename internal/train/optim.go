package train

import (
	"fmt"
	"math"

	lib "github.com/sugarme/gotch/libtch"
)

// param is one trainable tensor with its AdamW state, float32 like the
// parameter on CPU (and kept float32 as master state on CUDA too, see
// adamW.step).
type param struct {
	name    string
	t       ct // the parameter (owned by the model or the adapter)
	noDecay bool
	m, v    ct // exp_avg, exp_avg_sq (owned here)
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
	var o ops
	defer o.free()
	for _, p := range params {
		p.m = o.keep(o.zerosLike(p.t))
		p.v = o.keep(o.zerosLike(p.t))
	}
	if !o.ok() {
		opt.close()
		return nil, fmt.Errorf("optimizer state: %w", o.err)
	}
	return opt, nil
}

func (a *adamW) close() {
	for _, p := range a.params {
		if p.m != nil {
			lib.AtFree(p.m)
		}
		if p.v != nil {
			lib.AtFree(p.v)
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
	var o ops
	defer o.free()
	noGrad(func() {
		for _, p := range a.params {
			g := o.grad(p.t)
			if !o.ok() || !lib.AtDefined(g) {
				continue // unused this step: no grad, no update (as torch)
			}
			if !p.noDecay && a.weightDecay != 0 {
				o.mulScalar_(p.t, 1-lr*a.weightDecay)
			}
			o.lerp_(p.m, g, 1-a.beta1)
			o.mulScalar_(p.v, a.beta2)
			gg := o.mul(g, g)
			o.mulScalar_(gg, 1-a.beta2)
			o.add_(p.v, gg)
			denom := o.sqrt(p.v)
			o.divScalar_(denom, bc2Sqrt)
			o.addScalar_(denom, a.eps)
			upd := o.div(p.m, denom)
			o.mulScalar_(upd, -stepSize)
			o.add_(p.t, upd)
			o.free()
		}
	})
	if !o.ok() {
		return fmt.Errorf("adamw step: %w", o.err)
	}
	return nil
}

// zeroGrad zeroes every parameter's grad in place.
func (a *adamW) zeroGrad() error {
	var o ops
	defer o.free()
	for _, p := range a.params {
		g := o.grad(p.t)
		if o.ok() && lib.AtDefined(g) {
			o.zero_(g)
		}
	}
	if !o.ok() {
		return fmt.Errorf("zero grad: %w", o.err)
	}
	return nil
}

// clipGradNorm is torch.nn.utils.clip_grad_norm_ (norm type 2): it returns
// the total norm of all grads before clipping and scales them in place by
// min(1, maxNorm/(total+1e-6)). maxNorm <= 0 only measures.
func clipGradNorm(params []*param, maxNorm float64) (float64, error) {
	var o ops
	defer o.free()
	var norms []ct
	var grads []ct
	for _, p := range params {
		g := o.grad(p.t)
		if o.ok() && lib.AtDefined(g) {
			grads = append(grads, g)
			norms = append(norms, o.norm(g))
		}
	}
	if len(norms) == 0 || !o.ok() {
		if o.err != nil {
			return 0, fmt.Errorf("clip grad norm: %w", o.err)
		}
		return 0, nil
	}
	total := o.item(o.norm(o.stack(norms)))
	if maxNorm > 0 && !math.IsNaN(total) {
		coef := maxNorm / (total + 1e-6)
		if coef < 1 {
			noGrad(func() {
				for _, g := range grads {
					o.mulScalar_(g, coef)
				}
			})
		}
	}
	if !o.ok() {
		return 0, fmt.Errorf("clip grad norm: %w", o.err)
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
