package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

func randFloats(r *rand.Rand, n int64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

// The decode kernels (x @ w for w [K,N], and x @ w^T for w [N,K]) agree
// with libtorch's matmul, and a row's result does not depend on the other
// rows of the call.
// Each instruction set the CPU runs (AVX-512, AVX2) is checked, and the
// two give the same bits for x @ w.
func TestRowsMatmul(t *testing.T) {
	if !haveKernel {
		t.Skip("this CPU has neither AVX-512 nor AVX2 with FMA: decode steps use libtorch's matmul")
	}
	defer useKernelISA(kernelISA)
	var firstISA [][]float32 // x @ w per shape, from the first ISA checked
	for isa := kernelISA; isa >= isaAVX2; isa-- {
		if useKernelISA(isa) != isa {
			continue
		}
		t.Logf("instruction set %d", isa)
		firstISA = checkRowsMatmul(t, firstISA)
	}
}

func checkRowsMatmul(t *testing.T, other [][]float32) [][]float32 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var products [][]float32
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int64{1, 5, 256, 1000} {
		for _, n := range []int64{1, 7, 16, 48, 100, 1030} {
			var s scope
			w := s.Floats(gotch.CPU, gotch.Float, randFloats(r, k*n), k, n)
			wn := s.Contiguous(s.Transpose(w, 0, 1)) // [n,k]
			x := s.Floats(gotch.CPU, gotch.Float, randFloats(r, kernelMaxRowsNT*k), kernelMaxRowsNT, k)
			for _, m := range []int64{1, 2, 3, 4, 5, 7, 8, 9, 16, 22, kernelMaxRowsNT} {
				xm := s.Narrow(x, 0, 0, m)
				want := s.ReadFloat32s(s.Matmul(xm, w))
				for _, nt := range []bool{false, true} {
					if !nt && m > kernelMaxRows && k*n > kernelSmallMatrix {
						continue // prefill-sized: libtorch's, checkRowsRefused
					}
					mul := func(x ct) ct { return s.rowsMatmul(x, w) }
					if nt {
						mul = func(x ct) ct { return s.rowsMatmulNT(x, wn) }
					}
					got := s.ReadFloat32s(mul(xm))
					if s.Err() != nil {
						t.Fatal(s.Err())
					}
					if !nt && m == kernelMaxRows {
						if i := len(products); other != nil && !slices.Equal(got, other[i]) {
							t.Fatalf("k %d n %d: x @ w differs between instruction sets", k, n)
						}
						products = append(products, got)
					}
					if len(got) != len(want) {
						t.Fatalf("k %d n %d m %d nt %v: %d values, want %d", k, n, m, nt, len(got), len(want))
					}
					tol := 1e-5 * math.Sqrt(float64(k))
					for i := range got {
						if d := math.Abs(float64(got[i] - want[i])); d > tol {
							t.Fatalf("k %d n %d m %d nt %v: y[%d] = %g, libtorch %g", k, n, m, nt, i, got[i], want[i])
						}
					}
					for i := int64(0); i < m; i++ {
						alone := s.ReadFloat32s(mul(s.Narrow(x, 0, i, 1)))
						if !slices.Equal(alone, got[i*n:(i+1)*n]) {
							t.Fatalf("k %d n %d nt %v: row %d alone differs from row %d of %d", k, n, nt, i, i, m)
						}
					}
				}
			}
			s.Free()
		}
	}
	checkRowsRefused(t, r)
	return products
}

// checkRowsRefused: what the kernel does not take: many rows for a large
// matrix, inputs that need gradients, strided input, float64.
func checkRowsRefused(t *testing.T, r *rand.Rand) {
	t.Helper()
	var s scope
	defer s.Free()
	w := s.Floats(gotch.CPU, gotch.Float, randFloats(r, 64), 8, 8)
	big := s.Floats(gotch.CPU, gotch.Float, randFloats(r, 256*300), 256, 300)
	if s.rowsMatmul(s.Floats(gotch.CPU, gotch.Float, randFloats(r, 256*(kernelMaxRows+1)), kernelMaxRows+1, 256), big) != nil {
		t.Error("took more than kernelMaxRows rows for a large matrix")
	}
	if s.rowsMatmulNT(s.Floats(gotch.CPU, gotch.Float, randFloats(r, 8*(kernelMaxRowsNT+1)), kernelMaxRowsNT+1, 8), w) != nil {
		t.Error("took more than kernelMaxRowsNT rows with a transposed matrix")
	}
	if s.rowsMatmul(s.Floats(gotch.CPU, gotch.Float, randFloats(r, 8*(kernelMaxRows+1)), kernelMaxRows+1, 8), w) == nil {
		t.Error("refused many rows for a small matrix")
	}
	if s.rowsMatmul(s.RequiresGrad(s.Floats(gotch.CPU, gotch.Float, randFloats(r, 8), 1, 8), true), w) != nil {
		t.Error("took an input that needs gradients")
	}
	if s.rowsMatmul(s.Transpose(w, 0, 1), w) != nil {
		t.Error("took a non-contiguous input")
	}
	if s.rowsMatmul(s.To(w, gotch.CPU, gotch.Double), s.To(w, gotch.CPU, gotch.Double)) != nil {
		t.Error("took float64")
	}
}

// BenchmarkRowsMatmul: the benchmark model's weight shapes (one decode
// step's products; ns/op is one step) for 1, 8, 22 and 64 rows, with the kernel
// and with libtorch's linear, the weights [out,in] as a model holds them.
func BenchmarkRowsMatmul(b *testing.B) {
	torch.SetThreads(*benchThreads)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := benchConfig()
	h, inter := int64(c.HiddenSize), int64(c.IntermediateSize)
	kv := h / int64(c.NumHeads) * int64(c.NumKVHeads)
	shapes := [][2]int64{}
	for range c.NumLayers {
		shapes = append(shapes, [2]int64{h, h}, [2]int64{h, kv}, [2]int64{h, kv}, [2]int64{h, h}, [2]int64{h, inter}, [2]int64{h, inter}, [2]int64{inter, h})
	}
	shapes = append(shapes, [2]int64{h, int64(c.VocabSize)})
	r := rand.New(rand.NewPCG(3, 4))
	var s scope
	defer s.Free()
	ws := make([]ct, len(shapes))
	for i, sh := range shapes {
		ws[i] = s.Floats(gotch.CPU, gotch.Float, randFloats(r, sh[0]*sh[1]), sh[1], sh[0]) // [out,in]
	}
	for _, m := range benchRowCounts {
		xs := map[int64]ct{h: s.Floats(gotch.CPU, gotch.Float, randFloats(r, m*h), m, h), inter: s.Floats(gotch.CPU, gotch.Float, randFloats(r, m*inter), m, inter)}
		for _, impl := range []string{"kernel", "libtorch"} {
			if impl == "kernel" && !haveKernel {
				continue
			}
			b.Run(fmt.Sprintf("%s/rows=%d", impl, m), func(b *testing.B) {
				for range b.N {
					for i, sh := range shapes {
						mark := s.Mark()
						if impl == "kernel" {
							s.rowsMatmulNT(xs[sh[0]], ws[i])
						} else {
							s.Linear(xs[sh[0]], ws[i], nil)
						}
						s.Release(mark)
					}
				}
			})
		}
	}
}

// benchRowCounts are BenchmarkRowsMatmul's row counts: decode batches of 1
// and 8, and short prompts' prefill (22 and 64 positions).
var benchRowCounts = []int64{1, 8, 22, 64}
