package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkRateLimitTwoAddresses measures the UI's limits under load (issue
// #20: "a load test from one address is limited while a second address
// still gets answers"). The real UI server, with its default limits, runs on
// loopback in front of a stand-in API that streams 3 tokens 20 ms apart. From
// 127.0.0.1, UI_BENCH_CLIENTS (default 16) clients post /api/generate back
// to back; from 127.0.0.2 one person asks every 1.5 s. Each round lasts
// UI_BENCH_DURATION (default 10s). It reports, per address, answered and
// refused requests and latency percentiles, and logs a Markdown table
// (bench/ui_ratelimit.sh puts it in docs/benchmarks.md).
//
//	go test -run '^$' -bench RateLimitTwoAddresses -benchtime 1x -v ./ui/server
func BenchmarkRateLimitTwoAddresses(b *testing.B) {
	if !canDialFrom("127.0.0.2") {
		b.Skip("127.0.0.2 is not routable here")
	}
	dur := 10 * time.Second
	if s := os.Getenv("UI_BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}
	clients := 16
	if s := os.Getenv("UI_BENCH_CLIENTS"); s != "" {
		fmt.Sscan(s, &clients)
	}
	for b.Loop() {
		api := newStandinAPI(b, testModel, "An", " answer", ".")
		api.set(func(bh *behaviour) { bh.tokenDelay = 20 * time.Millisecond })
		ui := startUIWith(b, Options{APIURL: api.srv.URL, ModelName: testModel})
		flood, person := clientFrom(b, "127.0.0.1"), clientFrom(b, "127.0.0.2")
		var a, p stats
		stop := time.Now().Add(dur)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					a.add(ask(flood, ui))
				}
			})
		}
		wg.Go(func() {
			for time.Now().Before(stop) {
				next := time.Now().Add(1500 * time.Millisecond)
				p.add(ask(person, ui))
				time.Sleep(time.Until(next))
			}
		})
		wg.Wait()
		b.ReportMetric(float64(a.n(200)), "flood-200")
		b.ReportMetric(float64(a.n(429)), "flood-429")
		b.ReportMetric(float64(p.n(200)), "person-200")
		b.ReportMetric(float64(p.n(429)), "person-429")
		b.ReportMetric(p.pct(200, 50), "person-p50-ms")
		b.ReportMetric(p.pct(200, 99), "person-p99-ms")
		b.Logf("\n| address | clients | requests | answered (200) | refused (429) | other | p50 / p99 ms answered | p50 / p99 ms refused |\n|---|---:|---:|---:|---:|---:|---:|---:|\n%s\n%s",
			a.row("127.0.0.1 (flood)", clients), p.row("127.0.0.2 (one person, every 1.5 s)", 1))
		b.Logf("duration %s; metrics after the round:\n%s", dur, grepMetrics(b, ui))
	}
}

type stats struct {
	mu  sync.Mutex
	lat map[int][]time.Duration
}

func (s *stats) add(code int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lat == nil {
		s.lat = map[int][]time.Duration{}
	}
	s.lat[code] = append(s.lat[code], d)
}

func (s *stats) n(code int) int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.lat[code]) }

func (s *stats) pct(code, p int) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := slices.Clone(s.lat[code])
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return float64(l[min(len(l)-1, len(l)*p/100)].Microseconds()) / 1000
}

func (s *stats) row(name string, clients int) string {
	total, other := 0, 0
	s.mu.Lock()
	for c, l := range s.lat {
		total += len(l)
		if c != 200 && c != 429 {
			other += len(l)
		}
	}
	s.mu.Unlock()
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %.1f / %.1f | %.1f / %.1f |", name, clients, total,
		s.n(200), s.n(429), other, s.pct(200, 50), s.pct(200, 99), s.pct(429, 50), s.pct(429, 99))
}

// ask posts one generation and reads the answer to its end; a transport
// error counts as status 0.
func ask(c *http.Client, ui string) (int, time.Duration) {
	start := time.Now()
	resp, err := c.Post(ui+"/api/generate", "application/json", strings.NewReader(`{"context":"c","question":"q"}`))
	if err != nil {
		return 0, time.Since(start)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func grepMetrics(b *testing.B, ui string) string {
	resp, err := http.Get(ui + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var keep []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "kfllm_ui_") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
