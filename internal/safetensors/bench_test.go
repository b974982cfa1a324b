package safetensors

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// benchFile is a ~200 MB F32 file shared by the load benchmarks: 50 tensors
// of 1M floats (4 MB each), like the layers of a small model.
var benchFile = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "safetensors-bench-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "model.safetensors")
	var specs []Spec
	for i := range 50 {
		specs = append(specs, Spec{Name: fmt.Sprintf("layers.%02d.weight", i), DType: F32, Shape: []int64{1024, 1024}})
	}
	w, err := Create(path, specs, map[string]string{"format": "pt"})
	if err != nil {
		return "", err
	}
	chunk := make([]byte, 4<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for _, s := range specs {
		if err := w.WriteTensor(s.Name, chunk); err != nil {
			w.Abort()
			return "", err
		}
	}
	return path, w.Close()
})

func TestMain(m *testing.M) {
	code := m.Run()
	if path, err := benchFile(); err == nil && path != "" {
		os.RemoveAll(filepath.Dir(path))
	}
	os.Exit(code)
}

// touch reads one byte per page, so every page of the data is faulted in.
func touch(b []byte) (sum byte) {
	for i := 0; i < len(b); i += 4096 {
		sum += b[i]
	}
	return sum
}

// BenchmarkLoad200MB compares opening a ~200 MB file and touching all of
// its data through the mmap (Open) with reading it into the Go heap
// (os.ReadFile). heap-MB/op is the Go heap allocated per load.
func BenchmarkLoad200MB(b *testing.B) {
	if _, err := benchFile(); err != nil {
		b.Fatal(err)
	}
	path, _ := benchFile()
	run := func(b *testing.B, load func() (byte, error)) {
		var before, after runtime.MemStats
		b.SetBytes(200 << 20)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for b.Loop() {
			if _, err := load(); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "heap-MB/op")
	}
	b.Run("mmap", func(b *testing.B) {
		run(b, func() (byte, error) {
			f, err := Open(path)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			var s byte
			for _, name := range f.Names() {
				d, err := f.Data(name)
				if err != nil {
					return 0, err
				}
				s += touch(d)
			}
			return s, nil
		})
	})
	b.Run("readfile", func(b *testing.B) {
		run(b, func() (byte, error) {
			d, err := os.ReadFile(path)
			return touch(d), err
		})
	})
}

// TestLoadKeepsWeightsOffHeap opens the ~200 MB file, touches every byte
// page, and checks that the Go heap grew by far less than the file: the
// weights live in the page cache, not in Go memory.
func TestLoadKeepsWeightsOffHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MB file")
	}
	path, err := benchFile()
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int
	for _, name := range f.Names() {
		d, _ := f.Data(name)
		touch(d)
		total += len(d)
	}
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("touched %d MB of tensor data; Go heap allocated %d KB", total>>20, grew>>10)
	if total < 200<<20 || grew > 1<<20 {
		t.Errorf("touched %d bytes, heap allocated %d bytes; want >= 200 MB touched with < 1 MB allocated", total, grew)
	}
}
