package torch

/*
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Tensor is a libtorch tensor handle (an at::Tensor* made by libtch).
// Whoever owns it frees it once: a Scope, or the caller after Detach.
type Tensor = lib.Ctensor

// Of is the handle behind a gotch tensor (nil for nil); gotch still owns it.
func Of(t *ts.Tensor) Tensor {
	if t == nil {
		return nil
	}
	return Tensor(t.Ctensor())
}

// Wrap hands a handle to gotch, which then owns (and eventually frees) it.
// The result carries gotch's ballast and finalizer: for tensors that live
// as long as a model, not per op.
func Wrap(c Tensor) *ts.Tensor { return ts.FromCtensor(unsafe.Pointer(c)) }

// Free frees a handle the caller owns.
func Free(c Tensor) {
	if c != nil {
		lib.AtFree(c)
	}
}

// ShallowClone is a new handle to c's storage, for a second owner.
func ShallowClone(c Tensor) Tensor { return lib.AtShallowClone(c) }

// Shape is c's size per dimension (nil for nil).
func Shape(c Tensor) []int64 {
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

// Numel is the element count of a shape.
func Numel(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// takeErr fetches and clears libtorch's error for this OS thread, naming
// op; nil when there is none.
func takeErr(op string) error {
	p := lib.GetAndResetLastErr()
	if p == nil {
		return nil
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

// Scope runs ops and owns their results until Free, Release or Detach.
// After the first failure every op returns nil (and does nothing) and Err
// keeps the reason, so a forward pass or an optimizer step reads straight
// through and checks once. The zero Scope is ready to use; it is used by
// one goroutine, on one locked OS thread.
type Scope struct {
	owned []Tensor
	err   error
}

// opCount counts libtorch results made, for the benchmarks' ops/token.
var opCount atomic.Int64

// OpCount is the number of op results made by every Scope so far.
func OpCount() int64 { return opCount.Load() }

// Err is the first failure, or nil.
func (s *Scope) Err() error { return s.err }

// OK reports whether no op has failed.
func (s *Scope) OK() bool { return s.err == nil }

// Fail records err unless an earlier failure is recorded.
func (s *Scope) Fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// Own records c, the result of op; a nil c means libtorch raised, and its
// message becomes the Scope's error.
func (s *Scope) Own(c Tensor, op string) Tensor {
	if c == nil {
		err := takeErr(op)
		if err == nil {
			err = fmt.Errorf("%s: libtorch failed without a message", op)
		}
		s.Fail(err)
		return nil
	}
	s.owned = append(s.owned, c)
	opCount.Add(1)
	return c
}

// Check records a libtorch error raised by an op that returns no result.
func (s *Scope) Check(op string) {
	if err := takeErr(op); err != nil {
		s.Fail(err)
	}
}

// Mark and Release free everything made since Mark except keep, which
// stays owned: how a layer drops its intermediates but passes its output
// on.
func (s *Scope) Mark() int { return len(s.owned) }

// Release frees the results made since mark, except keep.
func (s *Scope) Release(mark int, keep ...Tensor) {
	kept := s.owned[:mark]
	for _, c := range s.owned[mark:] {
		if slices.Contains(keep, c) {
			kept = append(kept, c)
			continue
		}
		lib.AtFree(c)
	}
	clear(s.owned[len(kept):])
	s.owned = kept
}

// Free frees every result the Scope owns; it stays usable.
func (s *Scope) Free() { s.Release(0) }

// Detach takes c out of the Scope: the caller now frees it.
func (s *Scope) Detach(c Tensor) Tensor {
	if i := s.index(c); i >= 0 {
		s.owned = slices.Delete(s.owned, i, i+1)
	}
	return c
}

// Drop frees c now, if the Scope owns it.
func (s *Scope) Drop(c Tensor) {
	if i := s.index(c); i >= 0 {
		s.owned = slices.Delete(s.owned, i, i+1)
		lib.AtFree(c)
	}
}

func (s *Scope) index(c Tensor) int {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == c {
			return i
		}
	}
	return -1
}
