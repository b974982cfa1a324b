//go:build linux

package safetensors

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// mappedRSS is the resident size of this process's mappings of path, from
// /proc/self/smaps: the file's pages that count in the process's RSS.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path // a VMA line: range perms offset dev inode [path]
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

var sink byte

// TestReleaseDropsPagesKeepsData: a loader that copies each tensor out and
// then releases it leaves none of the file's pages in the process's
// resident set (so the file and the copies are not held at once), and the
// views stay valid: Data after Release reads the same bytes. Tensors of odd
// sizes share pages with their neighbours.
func TestReleaseDropsPagesKeepsData(t *testing.T) {
	dir := t.TempDir()
	path, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(path, "model.safetensors")
	var ts []Tensor
	for i := range 12 {
		n := 1<<20 + 4*(i*1237%4096) // 1 MiB and an odd number of floats more
		d := make([]byte, n)
		for j := range d {
			d[j] = byte(i*31 + j*7)
		}
		ts = append(ts, Tensor{Name: fmt.Sprintf("layers.%02d.weight", i), DType: F32, Shape: []int64{int64(n / 4)}, Data: d})
	}
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range ts {
		d, err := s.Data(w.Name)
		if err != nil {
			t.Fatal(err)
		}
		sink += touch(d)
	}
	if got := mappedRSS(t, path); got < 12<<20 {
		t.Fatalf("after touching every tensor the mapping holds %d KB resident; want >= 12 MB (is %s mapped?)", got>>10, path)
	}
	for _, w := range ts {
		if err := s.Release(w.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := mappedRSS(t, path); got > 64<<10 {
		t.Errorf("after Release of every tensor the mapping still holds %d KB resident; want none", got>>10)
	}
	for _, w := range ts {
		d, err := s.Data(w.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d, w.Data) {
			t.Errorf("%s: data after Release differs", w.Name)
		}
	}
	if err := s.Release("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release of a missing tensor: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ts[0].Name); !errors.Is(err, ErrClosed) {
		t.Errorf("Release after Close: %v, want ErrClosed", err)
	}
}

// vmHWM is this process's peak resident set (VmHWM) in bytes.
func vmHWM(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Skip("no VmHWM")
	return 0
}

// BenchmarkCopyOutPeakRSS loads the ~200 MB file as internal/model's loader
// does, each tensor copied out of the mapping into memory of its own (an
// anonymous mapping here, as libtorch's allocations are, off the Go heap),
// with and without Release after each copy. peak-MB is the rise of the
// process's peak resident set (VmHWM, reset through /proc/self/clear_refs
// before each load) above what it was before: the copies alone are 200 MB.
func BenchmarkCopyOutPeakRSS(b *testing.B) {
	path, err := benchFile()
	if err != nil {
		b.Fatal(err)
	}
	for _, release := range []bool{false, true} {
		b.Run(map[bool]string{false: "keep", true: "release"}[release], func(b *testing.B) {
			var peak int64
			b.SetBytes(200 << 20)
			for b.Loop() {
				if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
					b.Skipf("cannot reset VmHWM: %v", err)
				}
				base := vmHWM(b)
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				var copies [][]byte
				for _, name := range f.Names() {
					d, err := f.Data(name)
					if err != nil {
						b.Fatal(err)
					}
					c, err := syscall.Mmap(-1, 0, len(d), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
					if err != nil {
						b.Fatal(err)
					}
					copy(c, d)
					copies = append(copies, c)
					if release {
						if err := f.Release(name); err != nil {
							b.Fatal(err)
						}
					}
				}
				f.Close()
				peak = max(peak, vmHWM(b)-base)
				for _, c := range copies {
					syscall.Munmap(c)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
		})
	}
}
