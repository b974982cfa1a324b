package train

import (
	"fmt"
	"slices"
	"time"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/torch"
)

// Data-parallel training (Options.Dist.WorldSize > 1). Every rank holds
// the whole model and the whole shard; an optimizer step's global
// micro-batch is BatchSize × WorldSize rows of the same plan a single
// process with that batch size follows, and rank r takes the r-th
// BatchSize of them. The label count of the step is summed across ranks
// first, so each rank back-propagates its cross-entropy sum divided by
// the global count, and the gradients are then summed (not averaged):
// the sum is exactly the single-process gradient of the step's token
// mean. Clipping and AdamW then run on identical gradients on every rank,
// which keeps the weights identical without further communication. Rank 0
// alone writes logs, checkpoints, evaluations and the output; a resumed
// run reads the checkpoint on rank 0 and broadcasts it.

// bucketBytes caps one allreduce's payload: DDP's default bucket_cap_mb.
const bucketBytes = 25 << 20

// ddp is a trainer's process group; nil trains in one process.
type ddp struct {
	g *dist.Group
	// dev is where the group's tensors must be: the CPU for Gloo, this
	// rank's GPU for NCCL (counts, the loss and the step go there too).
	dev  gotch.Device
	busy time.Duration // in collectives during steps
}

func (d *ddp) rank() int {
	if d == nil {
		return 0
	}
	return d.g.Rank()
}

func (d *ddp) world() int {
	if d == nil {
		return 1
	}
	return d.g.Size()
}

func (d *ddp) clock(start time.Time) { d.busy += time.Since(start) }

// localRows is rank's share of a global micro-batch: its per-rank
// BatchSize rows, in order (fewer, or none, in an epoch's last batch).
func localRows(rows []int, rank, per int) []int {
	lo := min(rank*per, len(rows))
	return rows[lo:min(lo+per, len(rows))]
}

// syncStart makes every rank start from rank 0's weights, optimizer
// state and step (rank 0's checkpoint, when it resumed one), and makes
// every gradient defined, so that every rank's buckets hold the same
// tensors from the first step on.
func (t *trainer) syncStart() error {
	var o torch.Scope
	defer o.Free()
	var ts []torch.Tensor
	for _, p := range t.params {
		ts = append(ts, p.t, p.m, p.v)
	}
	st := o.Int64s(t.dp.dev, []int64{int64(t.state.Step), int64(t.state.OptimizerStep)}, 2)
	if !o.OK() {
		return fmt.Errorf("sync start: %w", o.Err())
	}
	var err error
	torch.NoGrad(func() { err = t.dp.g.Broadcast(append(ts, st), 0) })
	if err != nil {
		return fmt.Errorf("sync start from rank 0: %w", err)
	}
	v := o.ReadInt64s(st)
	if !o.OK() {
		return fmt.Errorf("sync start: %w", o.Err())
	}
	t.state.Step, t.state.OptimizerStep = int(v[0]), int(v[1])
	t.opt.steps = t.state.OptimizerStep
	// A gradient that was never computed is undefined; zero ones from a
	// zero loss make it a tensor, which zeroGrad then keeps.
	for _, p := range t.params {
		if g := o.Grad(p.t); o.OK() && !torch.Defined(g) {
			o.Backward(o.Sum(o.MulScalar(p.t, 0)))
		}
	}
	if !o.OK() {
		return fmt.Errorf("sync start: %w", o.Err())
	}
	return nil
}

// sumCounts adds the label and token counts of a step across ranks.
func (d *ddp) sumCounts(count, tokens int) (int, int, error) {
	defer d.clock(time.Now())
	var o torch.Scope
	defer o.Free()
	c := o.Int64s(d.dev, []int64{int64(count), int64(tokens)}, 2)
	if !o.OK() {
		return 0, 0, o.Err()
	}
	if err := d.g.AllReduceSum([]torch.Tensor{c}, []int{1}); err != nil {
		return 0, 0, err
	}
	v := o.ReadInt64s(c)
	if !o.OK() {
		return 0, 0, o.Err()
	}
	return int(v[0]), int(v[1]), nil
}

// reduceGrads sums every parameter's gradient across ranks, in buckets
// of up to bucketBytes taken from the last parameter backwards (the order
// backward produces them, as DDP buckets), and the step's loss with them
// (its own bucket). It returns the global loss. NCCL sums the gradients
// where they are (on this rank's GPU, in their dtype, as DDP does);
// for Gloo, gradients off the CPU go through a flat CPU float32 copy per
// bucket: Gloo reduces host memory.
func (d *ddp) reduceGrads(params []*param, loss float64) (float64, error) {
	defer d.clock(time.Now())
	var o torch.Scope
	defer o.Free()
	grads := make([]torch.Tensor, 0, len(params))
	var buckets []int
	var size int64
	for _, p := range slices.Backward(params) {
		g := o.Grad(p.t)
		if !o.OK() {
			return 0, o.Err()
		}
		if !torch.Defined(g) {
			return 0, fmt.Errorf("allreduce: %s has no gradient", p.name)
		}
		n := torch.Numel(torch.Shape(g)) * 4
		if len(buckets) == 0 || size+n > bucketBytes {
			buckets = append(buckets, 0)
			size = 0
		}
		grads = append(grads, g)
		buckets[len(buckets)-1]++
		size += n
	}
	l := o.Floats(d.dev, gotch.Float, []float32{float32(loss)}, 1)
	if !o.OK() {
		return 0, o.Err()
	}
	var err error
	torch.NoGrad(func() {
		if len(grads) > 0 && !torch.OnCPU(grads[0]) && d.g.Backend() == dist.Gloo {
			err = d.reduceOffCPU(&o, grads, buckets, l)
			return
		}
		err = d.g.AllReduceSum(append(grads, l), append(buckets, 1))
	})
	if err != nil {
		return 0, err
	}
	v := o.ReadFloat32s(l)
	if !o.OK() {
		return 0, o.Err()
	}
	return float64(v[0]), nil
}

// reduceOffCPU is reduceGrads for gradients on an accelerator: each bucket
// is flattened into one CPU float32 tensor, summed, and copied back.
func (d *ddp) reduceOffCPU(o *torch.Scope, grads []torch.Tensor, buckets []int, loss torch.Tensor) error {
	flats := make([]torch.Tensor, 0, len(buckets)+1)
	k := 0
	for _, n := range buckets {
		parts := make([]torch.Tensor, n)
		for i, g := range grads[k : k+n] {
			parts[i] = o.Reshape(g, -1)
		}
		flats = append(flats, o.To(o.Cat(parts, 0), gotch.CPU, gotch.Float))
		k += n
	}
	if !o.OK() {
		return o.Err()
	}
	ones := make([]int, len(flats)+1)
	for i := range ones {
		ones[i] = 1
	}
	if err := d.g.AllReduceSum(append(flats, loss), ones); err != nil {
		return err
	}
	k = 0
	for b, n := range buckets {
		var off int64
		for _, g := range grads[k : k+n] {
			shape := torch.Shape(g)
			m := torch.Numel(shape)
			o.CopyInto(g, o.View(o.Narrow(flats[b], 0, off, m), shape...))
			off += m
		}
		k += n
	}
	return o.Err()
}
