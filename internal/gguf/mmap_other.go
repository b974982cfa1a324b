//go:build !unix

package gguf

import (
	"fmt"
	"io"
	"math"
	"os"
)

// mapFile reads the first size bytes of f into memory: platforms without
// mmap hold one copy of the file on the heap.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%d bytes do not fit in the address space", size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, nil, err
	}
	return b, nil, nil
}
