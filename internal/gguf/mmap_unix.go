//go:build unix

package gguf

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only and returns them with the
// function that unmaps them. The page cache holds the bytes, not the Go heap.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if size == 0 {
		return []byte{}, nil, nil
	}
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%d bytes do not fit in the address space", size)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return m, func() error { return syscall.Munmap(m) }, nil
}
