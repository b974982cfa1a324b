//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// mapData maps n bytes of f starting at off read-only and returns them with
// the function that unmaps them. The page cache holds the bytes, not the Go
// heap.
func mapData(f *os.File, off, n int64) ([]byte, func() error, error) {
	if n == 0 {
		return []byte{}, nil, nil
	}
	page := int64(os.Getpagesize())
	start := off / page * page // mmap offsets must be page-aligned
	length := off - start + n
	if length > math.MaxInt {
		return nil, nil, fmt.Errorf("%d bytes do not fit in the address space", length)
	}
	m, err := syscall.Mmap(int(f.Fd()), start, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return m[off-start:], func() error { return syscall.Munmap(m) }, nil
}
