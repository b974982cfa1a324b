package model

import (
	"errors"

	"github.com/kfllm/kfllm/internal/torch"
)

// ct is a libtorch tensor handle; see internal/torch.
type ct = torch.Tensor

// scope is a torch.Scope with the model's own ops added: the decode
// kernels of gemm.go. lora, when set, is the per-row LoRA adapters of the
// pass that runs in the scope (adapter.go); Linear.forward adds them.
type scope struct {
	torch.Scope
	lora *loraRows

	// qin is the last input quantized for a quantized Linear and quantized
	// counts the quantizations (quant.go).
	qin       *quantInput
	quantized int
}

// errClosed is returned by a Model used after Close.
var errClosed = errors.New("model is closed")
