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

// Group is one rank's handle on a Gloo process group (c10d's
// ProcessGroupGloo over a TCPStore). Its collectives are called by every
// rank in the same order; each blocks until it is done on this rank, and
// fails (rather than hangs) when a peer is gone or the group's timeout
// passes.
type Group struct {
	g     *C.kfllm_group
	rank  int
	world int
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
}

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
	addr := C.CString(c.MasterAddr)
	defer C.free(unsafe.Pointer(addr))
	host := C.CString(deviceHost(c.MasterAddr))
	defer C.free(unsafe.Pointer(host))
	iface := C.CString(c.Iface)
	defer C.free(unsafe.Pointer(iface))
	var e *C.char
	g := C.kfllm_group_new(addr, C.int(c.MasterPort), C.int(c.Rank), C.int(c.WorldSize),
		C.int64_t(c.Timeout.Milliseconds()), host, iface, &e)
	if g == nil {
		return nil, cErr(fmt.Sprintf("join process group at %s:%d as rank %d of %d", c.MasterAddr, c.MasterPort, c.Rank, c.WorldSize), e)
	}
	return &Group{g: g, rank: c.Rank, world: c.WorldSize}, nil
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.world }

// AllReduceSum replaces each tensor, on every rank, by its sum over the
// ranks. buckets lists how many consecutive tensors go into each
// allreduce (all of one dtype and device); every bucket is started before
// the first is waited for, so Gloo's threads overlap them.
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
