package train

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/torch"
)

// The accelerator path of the gradient allreduce (each bucket flattened
// into one CPU float32 tensor, summed, copied back into the gradients'
// shapes) run with CPU tensors: two ranks in this process, two buckets of
// tensors of different shapes.
func TestFlatBucketsSumAcrossRanks(t *testing.T) {
	port, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][][]float32, 2)
	errs := make([]error, 2)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			g, err := dist.NewGroup(dist.Config{Env: dist.Env{Rank: r, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, Timeout: 30 * time.Second})
			if err != nil {
				errs[r] = err
				return
			}
			defer g.Close()
			d := &ddp{g: g, dev: gotch.CPU}
			var o torch.Scope
			defer o.Free()
			v := float32(r + 1)
			a := o.Floats(gotch.CPU, gotch.Float, []float32{v, 2 * v, 3 * v}, 3)
			b := o.Floats(gotch.CPU, gotch.Float, []float32{10 * v, 20 * v, 30 * v, 40 * v}, 2, 2)
			c := o.Floats(gotch.CPU, gotch.Float, []float32{100 * v}, 1)
			loss := o.Floats(gotch.CPU, gotch.Float, []float32{v}, 1)
			if errs[r] = d.reduceOffCPU(&o, []torch.Tensor{a, b, c}, []int{2, 1}, loss); errs[r] != nil {
				return
			}
			got[r] = [][]float32{o.ReadFloat32s(a), o.ReadFloat32s(b), o.ReadFloat32s(c), o.ReadFloat32s(loss)}
			if shape := torch.Shape(b); !slices.Equal(shape, []int64{2, 2}) {
				t.Errorf("rank %d: b's shape became %v", r, shape)
			}
			errs[r] = o.Err()
		}()
	}
	wg.Wait()
	want := [][]float32{{3, 6, 9}, {30, 60, 90, 120}, {300}, {3}}
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		for i := range want {
			if !slices.Equal(got[r][i], want[i]) {
				t.Errorf("rank %d tensor %d = %v, want %v", r, i, got[r][i], want[i])
			}
		}
	}
}
