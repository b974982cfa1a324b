package hub

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

// BenchmarkUploadSparse2GB uploads a sparse 2 GiB model.safetensors
// through the fake Hub (multipart, 64 MiB parts; the fake hashes what it
// receives without keeping it) and reports the peak Go heap and the peak
// RSS of the process (client and fake server together). Memory must not
// grow with the file: both stay in the tens of MiB.
//
//	go test -run '^$' -bench UploadSparse2GB -benchtime 1x ./internal/hub/
func BenchmarkUploadSparse2GB(b *testing.B) {
	const size = 2 << 30
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	// A header-like prefix so the sample is binary, then a hole.
	if _, err := f.Write([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}'}); err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`), 0o644)

	var peakHeap uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := hubtest.New(b)
		s.Uploads().PartSize = 64 << 20
		s.Uploads().KeepLimit = 0
		c := New(Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.UploadHTTPClient()})
		res, err := c.UploadFolder(context.Background(), dir, UploadOptions{RepoID: "bench/sparse"})
		if err != nil {
			b.Fatal(err)
		}
		if res.LFSSent != 1 || len(s.Uploads().Parts()) != 32 {
			b.Fatalf("result %+v, %d parts", res, len(s.Uploads().Parts()))
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
}

// peakRSS reads VmHWM from /proc/self/status (0 where there is none).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
