package dist

/*
// USE_C10D_GLOO: libtorch_cpu.so is built with it; the header hides
// ProcessGroupGloo without it.
#cgo CXXFLAGS: -std=c++17 -O2 -DUSE_C10D_GLOO
#cgo LDFLAGS: -ltorch_cpu -lc10 -lstdc++
#include <stdlib.h>
#include "c10d.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/kfllm/kfllm/internal/torch"
)

// Group is one rank's handle on a process group over a TCPStore: c10d's
// ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA ones (the
// backend is chosen once, by Config.CUDA, when the group is made). Its
// collectives are called by every rank in the same order; each blocks
// until it is done on this rank, and fails (rather than hangs) when a
// peer is gone or the group's timeout passes (NCCL: c10d's watchdog
// aborts the process instead, unless NCCL_BLOCKING_WAIT=1).
type Group struct {
	g       *C.kfllm_group
	rank    int
	world   int
	backend string
}

// Config says how to reach the group.
type Config struct {
	Env
	// Timeout bounds the rendezvous and every collective.
	Timeout time.Duration
	// Iface is the network interface Gloo binds (GLOO_SOCKET_IFNAME);
	// empty = the address MASTER_ADDR resolves to when it is a loopback
	// address, else c10d's default device (the host name's address).
	Iface string
	// CUDA says this rank's tensors are on cuda:Device: the group is
	// then NCCL's (which needs a build with the nccl tag, NCCLBuilt), and
	// Device becomes the process's current CUDA device. Otherwise the
	// tensors are on the CPU and the group is Gloo's.
	CUDA   bool
	Device int
}

// Backend names of the two process groups, as c10d names them.
const (
	Gloo = "gloo"
	NCCL = "nccl"
)

// NCCLBuilt reports whether ProcessGroupNCCL is compiled in (build tag
// nccl, the CUDA images): without it a CUDA group is an error.
func NCCLBuilt() bool { return C.kfllm_nccl_built() != 0 }

// ErrGroup is returned (wrapped) by every failed rendezvous or collective.
var ErrGroup = errors.New("process group")

func cErr(op string, e *C.char) error {
	msg := "failed"
	if e != nil {
		msg = C.GoString(e)
		C.free(unsafe.Pointer(e))
	}
	return fmt.Errorf("%s: %w: %s", op, ErrGroup, msg)
}

// NewGroup joins the group: rank 0 serves the TCPStore on
// MasterAddr:MasterPort, and every rank waits there for the others, for at
// most c.Timeout.
func NewGroup(c Config) (*Group, error) {
	if err := c.Env.validate(); err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		return nil, fmt.Errorf("process group: timeout %v must be positive", c.Timeout)
	}
	dev := -1
	if c.CUDA {
		if c.Device < 0 {
			return nil, fmt.Errorf("process group: CUDA device %d must not be negative", c.Device)
		}
		dev = c.Device
	}
	addr := C.CString(c.MasterAddr)
	defer C.free(unsafe.Pointer(addr))
	host := C.CString(deviceHost(c.MasterAddr))
	defer C.free(unsafe.Pointer(host))
	iface := C.CString(c.Iface)
	defer C.free(unsafe.Pointer(iface))
	var e *C.char
	g := C.kfllm_group_new(addr, C.int(c.MasterPort), C.int(c.Rank), C.int(c.WorldSize),
		C.int64_t(c.Timeout.Milliseconds()), host, iface, C.int(dev), &e)
	if g == nil {
		return nil, cErr(fmt.Sprintf("join process group at %s:%d as rank %d of %d", c.MasterAddr, c.MasterPort, c.Rank, c.WorldSize), e)
	}
	return &Group{g: g, rank: c.Rank, world: c.WorldSize, backend: C.GoString(C.kfllm_group_backend(g))}, nil
}

// Backend is c10d's name of the group's backend: Gloo or NCCL.
func (g *Group) Backend() string { return g.backend }

// Rank is this process's rank.
func (g *Group) Rank() int { return g.rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.world }

// AllReduceSum replaces each tensor, on every rank, by its sum over the
// ranks. buckets lists how many consecutive tensors go into each
// allreduce (all of one dtype and device: the CPU for Gloo, the group's
// CUDA device for NCCL); every bucket is started before the first is
// waited for, so Gloo's threads (NCCL's stream) overlap them.
func (g *Group) AllReduceSum(tensors []torch.Tensor, buckets []int) error {
	n := 0
	for _, b := range buckets {
		if b <= 0 {
			return fmt.Errorf("allreduce: empty bucket")
		}
		n += b
	}
	if n != len(tensors) {
		return fmt.Errorf("allreduce: buckets hold %d tensors, got %d", n, len(tensors))
	}
	if n == 0 {
		return nil
	}
	ptrs := cPointers(tensors)
	defer C.free(unsafe.Pointer(ptrs))
	sizes := (*C.int)(C.malloc(C.size_t(len(buckets)) * C.size_t(unsafe.Sizeof(C.int(0)))))
	defer C.free(unsafe.Pointer(sizes))
	cs := unsafe.Slice(sizes, len(buckets))
	for i, b := range buckets {
		cs[i] = C.int(b)
	}
	var e *C.char
	if C.kfllm_group_allreduce_sum(g.g, ptrs, sizes, C.int(len(buckets)), &e) != 0 {
		return cErr("allreduce", e)
	}
	return nil
}

// Broadcast copies root's tensors into every rank's, in place.
func (g *Group) Broadcast(tensors []torch.Tensor, root int) error {
	if len(tensors) == 0 {
		return nil
	}
	ptrs := cPointers(tensors)
	defer C.free(unsafe.Pointer(ptrs))
	var e *C.char
	if C.kfllm_group_broadcast(g.g, ptrs, C.int(len(tensors)), C.int(root), &e) != 0 {
		return cErr("broadcast", e)
	}
	return nil
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	var e *C.char
	if C.kfllm_group_barrier(g.g, &e) != 0 {
		return cErr("barrier", e)
	}
	return nil
}

// Close leaves the group. After a failed collective the process should
// exit instead: c10d's destructor waits for Gloo's queued work.
func (g *Group) Close() {
	if g.g != nil {
		C.kfllm_group_free(g.g)
		g.g = nil
	}
}

// cPointers copies the handles into C memory (cgo forbids passing Go
// memory that holds pointers).
func cPointers(ts []torch.Tensor) *unsafe.Pointer {
	p := (*unsafe.Pointer)(C.malloc(C.size_t(len(ts)) * C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))))
	s := unsafe.Slice(p, len(ts))
	for i, t := range ts {
		s[i] = unsafe.Pointer(t)
	}
	runtime.KeepAlive(ts)
	return p
}
