package train

import (
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/torch"
)

// ForwardAt (the last layer computed at the asked positions only) gives the
// logits Forward gives at those positions, with right and left padding.
func TestForwardAtMatchesForward(t *testing.T) {
	m, err := model.Load(filepath.Join("testdata", "parity", "base"), model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const b, tl = 3, 9
	ids := make([]int64, b*tl)
	for i := range ids {
		ids[i] = int64(3 + (i*37)%250)
	}
	for _, tc := range []struct {
		name string
		mask []int64
	}{
		{"no padding", nil},
		{"right padding", []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0}},
		{"left padding", []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := []int64{0, 3, 8, 10, 12, 13, 20, 26}
			var maskT *ts.Tensor
			if tc.mask != nil {
				maskT = ts.MustOfSlice(tc.mask).MustView([]int64{b, tl}, true)
				defer maskT.MustDrop()
			}
			in := ts.MustOfSlice(ids).MustView([]int64{b, tl}, true)
			defer in.MustDrop()
			full, err := m.Forward(in, maskT)
			if err != nil {
				t.Fatal(err)
			}
			defer full.MustDrop()
			sel, err := m.ForwardAt(ids, tc.mask, b, tl, at)
			if err != nil {
				t.Fatal(err)
			}
			defer sel.MustDrop()
			var o torch.Scope
			defer o.Free()
			fv, sv := o.ReadFloat32s(torch.Of(full)), o.ReadFloat32s(torch.Of(sel))
			v := len(fv) / (b * tl)
			worst := 0.0
			for j, a := range at {
				if tc.mask != nil && tc.mask[a] == 0 {
					continue // padding positions carry no loss
				}
				for k := 0; k < v; k++ {
					worst = math.Max(worst, math.Abs(float64(fv[int(a)*v+k]-sv[j*v+k])))
				}
			}
			if worst > 1e-5 {
				t.Errorf("ForwardAt differs from Forward by %.2e", worst)
			}
		})
	}
}
