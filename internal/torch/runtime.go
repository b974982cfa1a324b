package torch

/*
#cgo LDFLAGS: -ltorch_cpu -lc10
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>
// at::set_num_threads(int) and at::get_num_threads() from libtorch_cpu, by
// their C++ symbols: libtch declares C wrappers but gotch binds neither.
void _ZN2at15set_num_threadsEi(int);
int _ZN2at15get_num_threadsEv(void);
// From gotch's libtch (torch_api.cpp), which gotch declares but does not bind.
void at_manual_seed(int64_t);
*/
import "C"

import (
	"sync/atomic"

	lib "github.com/sugarme/gotch/libtch"
)

// SetThreads sets libtorch's intra-op thread count for the process (what
// torch.set_num_threads does in Python); n <= 0 leaves it unchanged.
func SetThreads(n int) {
	if n > 0 {
		C._ZN2at15set_num_threadsEi(C.int(n))
	}
}

// Threads reports libtorch's intra-op thread count.
func Threads() int { return int(C._ZN2at15get_num_threadsEv()) }

// ManualSeed seeds libtorch's default generator (torch.manual_seed): what
// dropout masks draw from.
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// NoGrad runs f with autograd off on this OS thread (the caller holds it).
func NoGrad(f func()) {
	prev := lib.AtGradSetEnabled(0)
	defer lib.AtGradSetEnabled(prev)
	f()
}

// TuneAllocatorForServing sets glibc's malloc for a long-running server
// that frees tensors of many sizes from many threads. Go runs libtorch
// calls on whichever OS thread is free, and glibc gives threads their own
// arenas (up to 8 per core) that each keep freed blocks: it caps them at
// two. And from then on TrimHeap hands the free pages of the heap back to
// the system, which internal/model does when a sequence is released, so
// that a finished sequence's KV cache and activations do not stay
// resident. It is process-wide: call it once at start, before loading a
// model. internal/model's BenchmarkDecodeRSS measures the effect.
func TuneAllocatorForServing() {
	C.mallopt(C.M_ARENA_MAX, 2)
	trimOnRelease.Store(true)
}

var trimOnRelease atomic.Bool

// TrimHeap returns free heap pages to the system if
// TuneAllocatorForServing asked for it, and does nothing otherwise.
func TrimHeap() {
	if trimOnRelease.Load() {
		C.malloc_trim(0)
	}
}

// TuneAllocatorForTraining sets glibc's malloc for a training process:
// freed activations stay in the heap for the next step (a 32 MB mmap
// threshold, the largest glibc allows, and no trimming below 1 GB) instead
// of going back to the kernel and faulting in again, zeroed, every step.
// It is process-wide and keeps RSS at its peak; components/finetune calls
// it at start. Measured on the demo model: a third of the page faults and
// of the system time.
func TuneAllocatorForTraining() {
	C.mallopt(C.M_MMAP_THRESHOLD, 32<<20)
	C.mallopt(C.M_TRIM_THRESHOLD, 1<<30)
	C.mallopt(C.M_TOP_PAD, 64<<20)
}
