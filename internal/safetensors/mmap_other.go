//go:build !unix

package safetensors

import (
	"fmt"
	"io"
	"math"
	"os"
)

// mapData reads n bytes of f starting at off into memory: platforms without
// mmap hold one copy of the data on the heap.
func mapData(f *os.File, off, n int64) (mapping, error) {
	if n > math.MaxInt {
		return mapping{}, fmt.Errorf("%d bytes do not fit in the address space", n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return mapping{}, err
	}
	return mapping{data: b}, nil
}
