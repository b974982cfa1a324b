//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// mapData maps n bytes of f starting at off read-only. The page cache holds
// the bytes, not the Go heap.
func mapData(f *os.File, off, n int64) (mapping, error) {
	if n == 0 {
		return mapping{data: []byte{}}, nil
	}
	page := int64(os.Getpagesize())
	start := off / page * page // mmap offsets must be page-aligned
	length := off - start + n
	if length > math.MaxInt {
		return mapping{}, fmt.Errorf("%d bytes do not fit in the address space", length)
	}
	m, err := syscall.Mmap(int(f.Fd()), start, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return mapping{}, fmt.Errorf("mmap: %w", err)
	}
	skip := off - start // m[skip] is the data section's first byte
	return mapping{data: m[skip:], unmap: func() error { return syscall.Munmap(m) }, release: releaser(m, skip, page)}, nil
}
