package device

import (
	"math"
	"strings"
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

// Each local rank of a node gets its own GPU (cuda:LOCAL_RANK), a rank
// without one is an error naming LOCAL_RANK, and without CUDA auto stays
// on the CPU for every rank. Pure logic: it runs without a GPU.
func TestPick(t *testing.T) {
	for _, tc := range []struct {
		device          string
		localRank, gpus int
		want            string // device name, or "error: " and a part of the message
	}{
		{"auto", 0, 0, "cpu"},
		{"auto", 3, 0, "cpu"},
		{"", 0, 1, "cuda:0"},
		{"auto", 0, 4, "cuda:0"},
		{"auto", 1, 4, "cuda:1"},
		{"auto", 3, 4, "cuda:3"},
		{"auto", 4, 4, "error: LOCAL_RANK=4 but libtorch sees 4 CUDA devices"},
		{"auto", 1, 1, "error: LOCAL_RANK=1 but libtorch sees 1 CUDA devices"},
		{"cuda", 2, 8, "cuda:2"},
		{"cuda", 2, 2, "error: LOCAL_RANK=2"},
		{"cuda", 0, 0, "error: no CUDA device"},
		{"cpu", 5, 2, "cpu"},
		{"cuda:1", 0, 2, "cuda:1"},
		{"cuda:1", 5, 2, "cuda:1"},
		{"cuda:2", 0, 2, "error: --device cuda:2 asked for, but libtorch sees 2 CUDA devices"},
		{"cuda:x", 0, 2, "error: want cuda:N"},
		{"tpu", 0, 2, "error: unknown device"},
		{"auto", -1, 2, "error: LOCAL_RANK=-1"},
	} {
		d, err := Pick(tc.device, tc.localRank, tc.gpus)
		got := Name(d)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want && !(strings.HasPrefix(tc.want, "error: ") && strings.Contains(got, strings.TrimPrefix(tc.want, "error: "))) {
			t.Errorf("Pick(%q, LOCAL_RANK=%d, %d GPUs) = %q, want %q", tc.device, tc.localRank, tc.gpus, got, tc.want)
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
