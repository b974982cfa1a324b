package torch

/*
// From gotch's libtch (torch_api.cpp): -1 for the CPU, else the CUDA index.
int at_device(void *);
*/
import "C"

import (
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
)

// FromBytes makes a tensor of kind and dims from raw little-endian bytes
// (copied).
func (s *Scope) FromBytes(data []byte, kind gotch.DType, dims ...int64) Tensor {
	if s.err != nil {
		return nil
	}
	return s.Own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), kind.Size(), int(kind.CInt())), "tensor_of_data")
}

// fromData makes a CPU tensor of kind from data (copied), then moves it
// to dev in dt.
func fromData[T any](s *Scope, data []T, kind gotch.DType, dev gotch.Device, dt gotch.DType, dims []int64) Tensor {
	if s.err != nil {
		return nil
	}
	c := s.Own(lib.AtTensorOfData(unsafe.Pointer(&data[0]), dims, uint(len(dims)), kind.Size(), int(kind.CInt())), "tensor_of_data")
	if dev != gotch.CPU || dt != kind {
		return s.To(c, dev, dt)
	}
	return c
}

// Int64s makes an int64 tensor of dims on dev from Go values.
func (s *Scope) Int64s(dev gotch.Device, data []int64, dims ...int64) Tensor {
	return fromData(s, data, gotch.Int64, dev, gotch.Int64, dims)
}

// Bools makes a bool tensor of dims on dev from Go values.
func (s *Scope) Bools(dev gotch.Device, data []bool, dims ...int64) Tensor {
	return fromData(s, data, gotch.Bool, dev, gotch.Bool, dims)
}

// Floats makes a tensor of dims on dev in dt from float32 values.
func (s *Scope) Floats(dev gotch.Device, dt gotch.DType, data []float32, dims ...int64) Tensor {
	return fromData(s, data, gotch.Float, dev, dt, dims)
}

// readAs copies x, converted to kind on the CPU, into a Go slice.
func readAs[T any](s *Scope, x Tensor, kind gotch.DType) []T {
	c := s.Contiguous(s.To(x, gotch.CPU, kind))
	if s.err != nil {
		return nil
	}
	n := Numel(Shape(c))
	out := make([]T, n)
	if n > 0 {
		lib.AtCopyData(c, unsafe.Pointer(&out[0]), uint(n), kind.Size())
	}
	return out
}

// ReadFloat32s copies x (any float dtype, any device) into Go.
func (s *Scope) ReadFloat32s(x Tensor) []float32 { return readAs[float32](s, x, gotch.Float) }

// ReadInt64s copies an integer or bool tensor into Go.
func (s *Scope) ReadInt64s(x Tensor) []int64 { return readAs[int64](s, x, gotch.Int64) }

// ReadBytes copies a contiguous CPU tensor's raw bytes into dst, whose
// length is its element count times eltSize.
func ReadBytes(c Tensor, dst []byte, eltSize uint) {
	if len(dst) > 0 {
		lib.AtCopyData(c, unsafe.Pointer(&dst[0]), uint(len(dst))/eltSize, eltSize)
	}
}

// Item reads a one-element tensor as float64.
func (s *Scope) Item(x Tensor) float64 {
	if s.err != nil {
		return 0
	}
	v := lib.AtDoubleValueAtIndexes(x, nil, 0)
	s.Check("item")
	return v
}

// DataPtr is the address of c's first element.
func DataPtr(c Tensor) unsafe.Pointer { return lib.AtDataPtr(c) }

// IsContiguous reports whether c is laid out row-major without gaps.
func IsContiguous(c Tensor) bool { return lib.AtIsContiguous(c) }

// IsFloat32 reports whether c holds float32.
func IsFloat32(c Tensor) bool { return lib.AtScalarType(c) == int32(gotch.Float.CInt()) }

// NeedsGrad reports whether autograd tracks c.
func NeedsGrad(c Tensor) bool { return lib.AtRequiresGrad(c) }

// OnCPU reports whether c lives in CPU memory.
func OnCPU(c Tensor) bool { return C.at_device(unsafe.Pointer(c)) == -1 }
