package model

import (
	"slices"
	"syscall"
	"unsafe"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

// One decode step reads every weight of the model once (SmolLM2-135M in
// float32: 540 MB a token), so one client's tokens/s is set by how fast
// two threads stream the weights from memory. On 4 KiB pages that is
// 25-26 GB/s on the test machine; on 2 MiB transparent huge pages 29-31
// GB/s (fewer TLB misses, and the hardware prefetcher crosses no page
// boundary every 4 KiB). libtorch allocates the weights on small pages and
// the machine's THP setting is "madvise", so an inference model asks for
// huge pages itself once its weights are loaded: MADV_HUGEPAGE on the
// 2 MiB-aligned parts of the memory the weights fill, then MADV_COLLAPSE
// (Linux 6.1) to move them there now rather than when khugepaged gets to
// them (minutes). BenchmarkFusedStep -huge-weights=false measures the
// step without.

// madvCollapse is MADV_COLLAPSE (linux/mman.h), which package syscall
// does not name.
const madvCollapse = 25

// hugePages is false to leave the weights on the pages libtorch gave them
// (BenchmarkFusedStep's comparison).
var hugePages = true

// hugeWeights puts the float32 CPU weights of an inference model on
// transparent huge pages where the kernel lets it. Best effort: a kernel
// without THP or MADV_COLLAPSE, THP "never", or no free huge pages leaves
// the weights where they are, as fast as before, so errors are ignored.
// Only whole 2 MiB pages inside the weights' memory are touched (weights
// that lie side by side count as one range), so RSS does not grow.
func (m *Model) hugeWeights() {
	if !hugePages || m.trainable || m.choice.Device != gotch.CPU {
		return
	}
	type span struct {
		p   unsafe.Pointer
		n   uintptr
		off uintptr // p as a number, for sorting and merging only
	}
	var spans []span
	for _, p := range m.params {
		c := torch.Of(p.Tensor)
		if !torch.IsFloat32(c) || !torch.OnCPU(c) || !torch.IsContiguous(c) {
			continue
		}
		n := uintptr(torch.Numel(torch.Shape(c))) * 4
		d := torch.DataPtr(c)
		spans = append(spans, span{d, n, uintptr(d)})
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	// Merge spans apart by at most an allocator's header and page rounding.
	const gap, huge = 64 << 10, 2 << 20
	var merged []span
	for _, s := range spans {
		if k := len(merged) - 1; k >= 0 && s.off <= merged[k].off+merged[k].n+gap {
			if end := s.off + s.n; end > merged[k].off+merged[k].n {
				merged[k].n = end - merged[k].off
			}
			continue
		}
		merged = append(merged, s)
	}
	for _, s := range merged {
		lo := (s.off + huge - 1) &^ (huge - 1)
		hi := (s.off + s.n) &^ (huge - 1)
		if hi <= lo {
			continue
		}
		b := unsafe.Slice((*byte)(unsafe.Add(s.p, lo-s.off)), hi-lo)
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
		_ = syscall.Madvise(b, madvCollapse)
	}
}
