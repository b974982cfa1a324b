package safetensors

import (
	"fmt"
	"syscall"
)

// releaser returns the function that drops data[begin:end]'s pages from the
// resident set, where the data section starts at m[skip] and m is a
// page-aligned shared mapping of the file: every page that holds a byte of
// the range gets MADV_DONTNEED, which for a shared file mapping only unmaps
// it from this process; the next read faults it back in from the page
// cache, so the bytes never change.
func releaser(m []byte, skip, page int64) func(begin, end int64) error {
	return func(begin, end int64) error {
		lo := (skip + begin) / page * page
		hi := min((skip+end+page-1)/page*page, int64(len(m)))
		if err := syscall.Madvise(m[lo:hi], syscall.MADV_DONTNEED); err != nil {
			return fmt.Errorf("madvise: %w", err)
		}
		return nil
	}
}
