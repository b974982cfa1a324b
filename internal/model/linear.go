package model

import (
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// LoRA is a low-rank adapter on a Linear: the layer computes
// x@W^T + b + Scale*(dropout(x)@A^T@B^T). A is [r,in], B is [out,r], as PEFT
// stores lora_A and lora_B (also for GPT-2's Conv1D layers).
type LoRA struct {
	A, B    *ts.Tensor
	Scale   float64
	Dropout float64
}

// Linear is a projection with an optional bias and an optional LoRA
// adapter. Weight is [out,in] as torch.nn.Linear stores it, except when
// Conv1D is set: then it is [in,out], as GPT-2's transformers Conv1D
// stores it, so that names and shapes round-trip unchanged.
type Linear struct {
	Weight, Bias *ts.Tensor
	LoRA         *LoRA
	Conv1D       bool

	// quant, when set, is the weight in ggml blocks (a model loaded with
	// LoadGGUF) and Weight is nil: quant.go multiplies by it.
	quant *quantWeight
}

// InFeatures and OutFeatures read the weight's shape.
func (l *Linear) InFeatures() int64 {
	if l.quant != nil {
		return l.quant.in
	}
	s := torch.Shape(torch.Of(l.Weight))
	if l.Conv1D {
		return s[0]
	}
	return s[1]
}

// OutFeatures is the size of the layer's output.
func (l *Linear) OutFeatures() int64 {
	if l.quant != nil {
		return l.quant.out
	}
	s := torch.Shape(torch.Of(l.Weight))
	if l.Conv1D {
		return s[1]
	}
	return s[0]
}

// forward applies the layer to x [..., in]. train switches LoRA dropout on.
func (l *Linear) forward(s *scope, x ct, train bool) ct {
	var y ct
	if !s.OK() {
		return nil
	}
	if l.quant != nil {
		y = s.quantMatmul(x, l.quant) // quant.go
		if l.Bias != nil {
			y = s.Add(y, torch.Of(l.Bias))
		}
	} else if l.Conv1D {
		// As transformers' Conv1D: addmm(bias, x.view(-1, in), weight).
		xs := torch.Shape(x)
		w := torch.Of(l.Weight)
		ws := torch.Shape(w)
		x2 := s.View(x, -1, ws[0])
		if l.Bias != nil {
			y = s.Addmm(torch.Of(l.Bias), x2, w)
		} else {
			y = s.Matmul(x2, w)
		}
		out := append(xs[:len(xs)-1:len(xs)-1], ws[1])
		y = s.View(y, out...)
	} else if y = s.rowsMatmulNT(x, torch.Of(l.Weight)); y != nil { // decode steps: gemm.go
		if l.Bias != nil {
			y = s.Add(y, torch.Of(l.Bias))
		}
	} else {
		y = s.Linear(x, torch.Of(l.Weight), torch.Of(l.Bias))
	}
	if s.lora != nil {
		y = s.lora.apply(s, l, x, y) // served adapters: adapter.go
	}
	if l.LoRA == nil {
		return y
	}
	h := x
	if l.LoRA.Dropout > 0 && train {
		h = s.Dropout(x, l.LoRA.Dropout, true)
	}
	h = s.Linear(s.Linear(h, torch.Of(l.LoRA.A), nil), torch.Of(l.LoRA.B), nil)
	return s.Add(y, s.MulScalar(h, l.LoRA.Scale))
}
