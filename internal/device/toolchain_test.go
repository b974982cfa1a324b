package device

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestToolchain proves the libtorch that scripts/setup.sh installs: gotch
// makes tensors from Go slices, multiplies them, runs a backward pass and an
// AdamW step on the CPU, and every number matches one worked out by hand.
func TestToolchain(t *testing.T) {
	x := ts.MustOfSlice([]float32{1, 2, 3, 4}).MustView([]int64{2, 2}, true)
	defer x.MustDrop()

	vs := nn.NewVarStore(gotch.CPU)
	w0 := ts.MustOfSlice([]float32{0.5, -1, 2, 0.25}).MustView([]int64{2, 2}, true)
	w := vs.Root().MustAdd("w", w0, true)
	w0.MustDrop()

	y := x.MustMatmul(w, false)
	assertClose(t, "x@w", y.Float64Values(), []float64{4.5, -0.5, 9.5, -2})

	loss := y.MustSum(gotch.Float, true)
	opt, err := nn.NewAdamWConfig(0.9, 0.999, 0.01).Build(vs, 0.1)
	if err != nil {
		t.Fatalf("build AdamW: %v", err)
	}
	if err := opt.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	loss.MustBackward()
	grad := w.MustGrad(false)
	// d(sum(x@w))/dw = x^T @ ones
	assertClose(t, "grad", grad.Float64Values(), []float64{4, 4, 6, 6})
	grad.MustDrop()

	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	// AdamW's first step: w <- w*(1-lr*wd) - lr*g/(|g|+eps) = w*0.999 - 0.1*sign(g).
	assertClose(t, "w after AdamW", w.Float64Values(), []float64{0.3995, -1.099, 1.898, 0.14975})
	loss.MustDrop()
}

func TestSelectCPU(t *testing.T) {
	c, err := Select("cpu", "auto")
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != gotch.CPU || c.DType != gotch.Float || c.String() != "cpu/float32" {
		t.Fatalf("Select(cpu, auto) = %v", c)
	}
	if _, err := Select("tpu", "auto"); err == nil {
		t.Fatal("Select(tpu) gave no error")
	}
	if _, err := Select("cpu", "int8"); err == nil {
		t.Fatal("Select(cpu, int8) gave no error")
	}
	if !gotch.CUDA.IsAvailable() {
		if _, err := Select("cuda", "auto"); err == nil {
			t.Fatal("Select(cuda) without CUDA gave no error")
		}
	}
}

func assertClose(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-5 {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}
