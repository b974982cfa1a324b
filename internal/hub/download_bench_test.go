package hub

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// zeroes is an endless source for a large response body without holding it.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkDownloadFile streams 256 MiB from a loopback server to disk and
// reports throughput and the heap in use afterwards, which must not grow
// with the file (the body is streamed, never held).
func BenchmarkDownloadFile(b *testing.B) {
	const size = 256 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "268435456")
		io.CopyN(w, zeroes{}, size)
	}))
	defer srv.Close()
	c := New(Options{})
	dir := b.TempDir()
	b.SetBytes(size)
	var peak uint64
	for b.Loop() {
		dest := filepath.Join(dir, "f")
		res, err := c.DownloadFile(context.Background(), srv.URL, dest, DownloadOptions{Progress: func(done, total int64) {
			if done%(64<<20) < 256<<10 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}})
		if err != nil || res.Size != size {
			b.Fatal(res, err)
		}
		os.Remove(dest)
	}
	b.ReportMetric(float64(peak)/(1<<20), "heap-MiB")
}
