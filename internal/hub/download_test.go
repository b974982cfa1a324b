package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestDownloadLFSRedirectKeepsTokenOnHub(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("model", "o/m")
	r.SetPrivate(true)
	data := payload(300_000)
	sha := r.CommitFiles("main", map[string][]byte{"model.safetensors": data})
	c := hubClient(s, s.Token)
	dest := filepath.Join(t.TempDir(), "model.safetensors")
	res, err := c.DownloadFile(context.Background(), c.FileURL(typeModel, "o/m", sha, "model.safetensors"), dest, DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) || res.SHA256 != sha256hex(data) || res.Size != int64(len(data)) {
		t.Fatalf("content differs (sha %s)", res.SHA256)
	}
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want resolve + CDN", len(reqs))
	}
	hubReq, cdnReq := reqs[0], reqs[1]
	if hubReq.Host != hubtest.HubHost || hubReq.RawPath != "/o/m/resolve/"+sha+"/model.safetensors" {
		t.Errorf("hub request = %s %s", hubReq.Host, hubReq.RawPath)
	}
	if hubReq.Header.Get("Authorization") != "Bearer "+s.Token || hubReq.Header.Get("Accept-Encoding") != "identity" {
		t.Errorf("hub request headers = %v", hubReq.Header)
	}
	if cdnReq.Host != hubtest.CDNHost {
		t.Fatalf("second request went to %s", cdnReq.Host)
	}
	// The CDN host is a subdomain of the Hub's: net/http alone would forward the token.
	for k, vs := range cdnReq.Header {
		for _, v := range vs {
			if strings.Contains(v, s.Token) {
				t.Errorf("token reached the CDN in header %s", k)
			}
		}
	}
	if _, err := os.Stat(dest + ".incomplete"); !os.IsNotExist(err) {
		t.Errorf("partial file left behind: %v", err)
	}
}

func TestDownloadResumesWithRangeAfterDrop(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/d")
	data := payload(1 << 20)
	sha := r.CommitFiles("main", map[string][]byte{"data/train.parquet": data})
	s.AddFault(hubtest.Fault{
		Match:     func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/repos/") },
		DropAfter: 100_000,
	})
	c := hubClient(s, "")
	dest := filepath.Join(t.TempDir(), "train.parquet")
	var last int64
	res, err := c.DownloadFile(context.Background(), c.FileURL(typeDataset, "o/d", sha, "data/train.parquet"), dest,
		DownloadOptions{ExpectedSHA256: sha256hex(data), Progress: func(done, total int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) || res.SHA256 != sha256hex(data) || last != int64(len(data)) {
		t.Fatalf("content differs after resume (progress %d)", last)
	}
	var ranges []string
	for _, q := range s.Requests() {
		if q.Host == hubtest.CDNHost {
			ranges = append(ranges, q.Header.Get("Range"))
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Fatalf("CDN Range headers = %q", ranges)
	}
	var off int
	fmt.Sscanf(ranges[1], "bytes=%d-", &off)
	if off < 1 || off > 100_000 {
		t.Errorf("resumed at %d, want within the first 100000 bytes already received", off)
	}
}

// A server that drops the first response and then ignores Range, as a
// plain origin without range support would: the client must start over.
func TestDownload200InsteadOf206StartsOver(t *testing.T) {
	data := payload(200_000)
	var calls atomic.Int32
	var sawRange atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if n == 1 {
			w.Write(data[:50_000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		sawRange.Store(r.Header.Get("Range"))
		w.Write(data)
	}))
	defer srv.Close()
	c := New(Options{Endpoint: "https://hub.invalid", MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
	dest := filepath.Join(t.TempDir(), "f")
	res, err := c.DownloadFile(context.Background(), srv.URL+"/f", dest, DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) || res.SHA256 != sha256hex(data) {
		t.Fatal("content differs after a 200 to a Range request")
	}
	if rng, _ := sawRange.Load().(string); rng != "bytes=50000-" {
		t.Errorf("second request Range = %q", rng)
	}
}

func TestDownloadRetries500And429(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("model", "o/m")
	sha := r.CommitFiles("main", map[string][]byte{"config.json": []byte(`{"a":1}`)})
	isResolve := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/resolve/") }
	s.AddFault(hubtest.Fault{Match: isResolve, Status: 500})
	s.AddFault(hubtest.Fault{Match: isResolve, Status: 429, Header: http.Header{"Retry-After": {"1"}}})
	c := hubClient(s, "")
	start := time.Now()
	dest := filepath.Join(t.TempDir(), "config.json")
	if _, err := c.DownloadFile(context.Background(), c.FileURL(typeModel, "o/m", sha, "config.json"), dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("did not wait for Retry-After")
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestDownloadSizeLimit(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/d")
	sha := r.CommitFiles("main", map[string][]byte{"big.jsonl": payload(10_000)})
	c := hubClient(s, "")
	dest := filepath.Join(t.TempDir(), "big.jsonl")
	_, err := c.DownloadFile(context.Background(), c.FileURL(typeDataset, "o/d", sha, "big.jsonl"), dest, DownloadOptions{MaxBytes: 4096})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	for _, p := range []string{dest, dest + ".incomplete"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

func TestDownloadChecksumMismatchLeavesNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer srv.Close()
	c := New(Options{})
	dest := filepath.Join(t.TempDir(), "f")
	_, err := c.DownloadFile(context.Background(), srv.URL, dest, DownloadOptions{ExpectedSHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Error("file left at dest")
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][2]int64{"bytes 10-99/100": {10, 100}, "bytes 0-0/*": {0, -1}} {
		s, tot, ok := parseContentRange(in)
		if !ok || s != want[0] || tot != want[1] {
			t.Errorf("%q -> %d %d %v", in, s, tot, ok)
		}
	}
	if _, _, ok := parseContentRange("items 1-2/3"); ok {
		t.Error("accepted a non-byte range")
	}
}

func TestRedactString(t *testing.T) {
	if got := redactString("https://user:pw@cdn.example/x/y?X-Amz-Signature=s#f"); got != "https://cdn.example/x/y" {
		t.Errorf("redactString = %q", got)
	}
}

func TestDownloadReconnectsAfterStall(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("model", "o/m")
	data := payload(200_000)
	sha := r.CommitFiles("main", map[string][]byte{"model.safetensors": data})
	s.AddFault(hubtest.Fault{Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/repos/") }, StallAfter: 64_000})
	c := hubClient(s, "")
	dest := filepath.Join(t.TempDir(), "model.safetensors")
	res, err := c.DownloadFile(context.Background(), c.FileURL(typeModel, "o/m", sha, "model.safetensors"), dest,
		DownloadOptions{StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sha256hex(data) {
		t.Fatal("content differs after a stalled connection")
	}
	var ranges []string
	for _, q := range s.Requests() {
		if q.Host == hubtest.CDNHost {
			ranges = append(ranges, q.Header.Get("Range"))
		}
	}
	if len(ranges) != 2 || ranges[1] != "bytes=64000-" {
		t.Errorf("CDN Range headers = %q", ranges)
	}
}
