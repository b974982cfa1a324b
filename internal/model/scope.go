package model

import (
	"errors"

	"github.com/kfllm/kfllm/internal/torch"
)

// ct is a libtorch tensor handle; see internal/torch.
type ct = torch.Tensor

// scope is a torch.Scope with the model's own ops added: the decode
// kernels of gemm.go.
type scope struct{ torch.Scope }

// errClosed is returned by a Model used after Close.
var errClosed = errors.New("model is closed")
