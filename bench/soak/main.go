// Command soak drives the model server for a long time with a mix of good,
// bad, aborted and slow requests, and samples the server's resident
// memory, goroutines, open file descriptors and established connections
// at an interval, so that a leak shows as a column that keeps growing.
// It prints a Markdown table and a summary, and exits 1 if any response
// was a 5xx other than a deliberate 503 or an answer was not what its kind
// expects. bench/soak.sh starts the server and runs it.
//
//	go run ./bench/soak -url http://127.0.0.1:8080 -pid 1234 -d 30m
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kind is one sort of request and the statuses it may get.
type kind struct {
	name string
	ok   []int
	run  func(ctx context.Context, c *client) (int, error)
}

type client struct {
	base, model string
	http        *http.Client
}

func (c *client) post(ctx context.Context, path, body string, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func jsonPost(path, body string) func(ctx context.Context, c *client) (int, error) {
	return func(ctx context.Context, c *client) (int, error) {
		st, _, err := c.post(ctx, path, body)
		return st, err
	}
}

func kinds(model string, bodyLimit int) []kind {
	v1 := "/v1/models/" + model + ":predict"
	v2 := "/v2/models/" + model + "/infer"
	chat := "/openai/v1/chat/completions"
	good, bad := []int{200, 503}, []int{400}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []kind{
		{"v1 predict", good, jsonPost(v1, `{"instances":[{"context":"The sky is blue.","question":"What colour is the sky?"}],"parameters":{"max_new_tokens":16}}`)},
		{"v1 sampled", good, jsonPost(v1, `{"instances":["Say something."],"parameters":{"max_new_tokens":16,"temperature":0.8,"top_p":0.9,"top_k":40,"repetition_penalty":1.2,"seed":7}}`)},
		{"v1 extreme params", good, jsonPost(v1, `{"instances":["Say something."],"parameters":{"max_new_tokens":8,"temperature":1e-45,"repetition_penalty":1e-300}}`)},
		{"v1 stream", good, func(ctx context.Context, c *client) (int, error) {
			st, b, err := c.post(ctx, v1, `{"instances":["Stream this."],"parameters":{"max_new_tokens":16}}`, "Accept", "text/event-stream")
			if err == nil && st == 200 && !bytes.Contains(b, []byte(`"done":true`)) {
				return st, fmt.Errorf("stream without a done event: %q", b)
			}
			return st, err
		}},
		{"v2 infer", good, jsonPost(v2, `{"inputs":[{"name":"question","shape":[2],"datatype":"BYTES","data":["a?","b?"]}],"parameters":{"max_new_tokens":8}}`)},
		{"chat stream", good, func(ctx context.Context, c *client) (int, error) {
			st, b, err := c.post(ctx, chat, `{"model":`+q(model)+`,"messages":[{"role":"user","content":"hi"}],"max_tokens":16,"stream":true}`)
			if err == nil && st == 200 && !bytes.HasSuffix(bytes.TrimSpace(b), []byte("data: [DONE]")) {
				return st, fmt.Errorf("chat stream without [DONE]: %q", b)
			}
			return st, err
		}},
		{"bad json", bad, jsonPost(v1, `{"instances": [`)},
		{"bad param", bad, jsonPost(v1, `{"instances":["q"],"parameters":{"temperature":-1}}`)},
		{"unknown param", bad, jsonPost(v1, `{"instances":["q"],"parameters":{"max_new_token":5}}`)},
		{"empty question v2", bad, jsonPost(v2, `{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":[""]}]}`)},
		{"null content", bad, jsonPost(chat, `{"model":`+q(model)+`,"messages":[{"role":"user","content":null}]}`)},
		{"wrong model", []int{404}, jsonPost("/v1/models/nope:predict", `{"instances":["q"]}`)},
		{"too large", []int{413}, jsonPost(v1, `{"instances":["`+strings.Repeat("x", bodyLimit)+`"]}`)},
		// The client goes away after the first token of a stream.
		{"aborted stream", []int{200, 503}, func(ctx context.Context, c *client) (int, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+v1,
				strings.NewReader(`{"instances":["Abort me."],"parameters":{"max_new_tokens":64}}`))
			req.Header.Set("Accept", "text/event-stream")
			resp, err := c.http.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			if resp.StatusCode == 200 {
				_, err = bufio.NewReader(resp.Body).ReadString('\n')
			}
			cancel()
			return resp.StatusCode, err
		}},
		// The client goes away before any answer.
		{"aborted request", []int{0, 503}, func(ctx context.Context, c *client) (int, error) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			st, _, err := c.post(ctx, v1, `{"instances":["Abort me."],"parameters":{"max_new_tokens":64}}`)
			if err != nil && ctx.Err() != nil {
				return 0, nil // gone before the answer, as meant
			}
			return st, err
		}},
	}
}

// counts are per kind: done, unexpected outcomes, 5xx.
type counts struct {
	mu               sync.Mutex
	done, unexpected map[string]int
	fiveXX           int
	firstErr         []string
}

func (c *counts) add(k kind, status int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[k.name]++
	if status >= 500 && status != 503 {
		c.fiveXX++
	}
	okStatus := false
	for _, s := range k.ok {
		okStatus = okStatus || s == status
	}
	if err != nil || !okStatus {
		c.unexpected[k.name]++
		if len(c.firstErr) < 10 {
			c.firstErr = append(c.firstErr, fmt.Sprintf("%s: status %d, err %v", k.name, status, err))
		}
	}
}

func (c *counts) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.done {
		n += v
	}
	return n
}

// trickle sends a request's headers, then its body a byte every gap; the
// server must cut it off (its ReadTimeout). It returns how long that took.
func trickle(ctx context.Context, addr, path string, gap time.Duration) (time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", path)
	closed := make(chan struct{})
	go func() { io.Copy(io.Discard, conn); close(closed) }()
	t := time.NewTicker(gap)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
			if _, err := conn.Write([]byte(" ")); err != nil {
				<-closed
				return time.Since(start), nil
			}
		}
	}
}

// idle opens a keep-alive connection, makes one request, and waits for the
// server to close it (its IdleTimeout).
func idle(ctx context.Context, addr string) (time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/health/live HTTP/1.1\r\nHost: soak\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, br); close(done) }()
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// raise sets m to v if v is larger.
func raise(m *atomic.Int64, v int64) {
	for old := m.Load(); v > old && !m.CompareAndSwap(old, v); old = m.Load() {
	}
}

type sample struct {
	at                       time.Duration
	rssKB                    int
	goroutines, fds, conns   int
	requests, slowCut, idled int
}

// rss reads VmRSS of pid in KiB.
func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// established counts the server's ESTABLISHED TCP sockets: those whose
// local port is the server's, in /proc/net/tcp and tcp6.
func established(port int) int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "01" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

// gauges scrapes the unlabelled gauges it needs from the server's /metrics.
func gauges(base string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && (f[0] == "go_goroutines" || f[0] == "process_open_fds" || f[0] == "process_resident_memory_bytes") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "server base URL (loopback)")
	model := flag.String("model", "llm", "model name")
	pid := flag.Int("pid", 0, "server process id, for RSS from /proc (0: from /metrics)")
	dur := flag.Duration("d", 30*time.Minute, "soak duration")
	every := flag.Duration("every", time.Minute, "sampling interval")
	workers := flag.Int("c", 4, "workers sending the mixed requests")
	slow := flag.Int("slow", 2, "clients trickling a body at a time")
	idlers := flag.Duration("idle-every", 10*time.Second, "open an idle keep-alive connection this often")
	think := flag.Duration("think", 100*time.Millisecond, "pause between a worker's requests")
	bodyLimit := flag.Int("body-limit", 1<<20, "the server's --max-body-bytes (the too-large request exceeds it)")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		fmt.Fprintln(os.Stderr, "soak: -url must be a loopback URL")
		os.Exit(2)
	}
	port, _ := strconv.Atoi(u.Port())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()

	c := &client{base: *base, model: *model, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}}
	ks := kinds(*model, *bodyLimit)
	cnt := &counts{done: map[string]int{}, unexpected: map[string]int{}}
	var slowCut, idled atomic.Int64
	var slowMax, idleMax atomic.Int64 // milliseconds
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				k := ks[rng.IntN(len(ks))]
				st, err := k.run(ctx, c)
				if ctx.Err() != nil {
					return
				}
				cnt.add(k, st, err)
				select {
				case <-ctx.Done():
				case <-time.After(*think):
				}
			}
		}()
	}
	addr := u.Host
	for range *slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d, err := trickle(ctx, addr, "/v1/models/"+*model+":predict", 2*time.Second)
				if err == nil {
					slowCut.Add(1)
					raise(&slowMax, d.Milliseconds())
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // one idle keep-alive connection every idle-every, each left for the server to close
		defer wg.Done()
		t := time.NewTicker(*idlers)
		defer t.Stop()
		var iw sync.WaitGroup
		defer iw.Wait()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				iw.Add(1)
				go func() {
					defer iw.Done()
					if d, err := idle(ctx, addr); err == nil {
						idled.Add(1)
						raise(&idleMax, d.Milliseconds())
					}
				}()
			}
		}
	}()

	start := time.Now()
	var samples []sample
	take := func() {
		g := gauges(*base)
		s := sample{at: time.Since(start), goroutines: int(g["go_goroutines"]), fds: int(g["process_open_fds"]),
			conns: established(port), requests: cnt.total(), slowCut: int(slowCut.Load()), idled: int(idled.Load())}
		if *pid > 0 {
			s.rssKB = rss(*pid)
		} else {
			s.rssKB = int(g["process_resident_memory_bytes"] / 1024)
		}
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "soak: %6s rss %7.1f MiB goroutines %4d fds %4d conns %4d requests %6d slow cut %4d idle closed %4d\n",
			s.at.Round(time.Second), float64(s.rssKB)/1024, s.goroutines, s.fds, s.conns, s.requests, s.slowCut, s.idled)
	}
	take()
	tick := time.NewTicker(*every)
	for loop := true; loop; {
		select {
		case <-ctx.Done():
			loop = false
		case <-tick.C:
			take()
		}
	}
	tick.Stop()
	wg.Wait()
	// After the traffic, with the soak's own idle connections closed, the
	// server's connections and goroutines must drain too.
	c.http.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	take()
	report(os.Stdout, samples, cnt, slowMax.Load(), idleMax.Load())
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	bad := 0
	for _, v := range cnt.unexpected {
		bad += v
	}
	if cnt.fiveXX > 0 || bad > 0 {
		fmt.Fprintf(os.Stderr, "soak: %d 5xx, %d unexpected outcomes; first: %s\n", cnt.fiveXX, bad, strings.Join(cnt.firstErr, "; "))
		os.Exit(1)
	}
}

func report(w io.Writer, samples []sample, cnt *counts, slowMaxMS, idleMaxMS int64) {
	fmt.Fprintln(w, "| elapsed | RSS MiB | goroutines | open fds | established conns | requests | trickled bodies cut | idle conns closed |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range samples {
		fmt.Fprintf(w, "| %s | %.1f | %d | %d | %d | %d | %d | %d |\n", s.at.Round(time.Second), float64(s.rssKB)/1024,
			s.goroutines, s.fds, s.conns, s.requests, s.slowCut, s.idled)
	}
	// Flatness: the second half against the first (skipping the first
	// sample, taken before any traffic, and the last, after it).
	if n := len(samples); n >= 5 {
		mid := samples[1 : n-1]
		h := len(mid) / 2
		rng := func(ss []sample, f func(sample) int) (int, int) {
			lo, hi := f(ss[0]), f(ss[0])
			for _, s := range ss {
				lo, hi = min(lo, f(s)), max(hi, f(s))
			}
			return lo, hi
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| under load | first half min-max | second half min-max |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, m := range []struct {
			name string
			f    func(sample) int
		}{
			{"RSS MiB", func(s sample) int { return s.rssKB / 1024 }},
			{"goroutines", func(s sample) int { return s.goroutines }},
			{"open fds", func(s sample) int { return s.fds }},
			{"established conns", func(s sample) int { return s.conns }},
		} {
			a, b := rng(mid[:h], m.f)
			c, d := rng(mid[h:], m.f)
			fmt.Fprintf(w, "| %s | %d-%d | %d-%d |\n", m.name, a, b, c, d)
		}
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	names := make([]string, 0, len(cnt.done))
	for k := range cnt.done {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| request kind | sent | unexpected |")
	fmt.Fprintln(w, "|---|---:|---:|")
	for _, k := range names {
		fmt.Fprintf(w, "| %s | %d | %d |\n", k, cnt.done[k], cnt.unexpected[k])
	}
	fmt.Fprintf(w, "\n5xx other than 503: %d. Longest a trickled body held its connection: %.1f s; longest an idle keep-alive connection stayed open: %.1f s.\n",
		cnt.fiveXX, float64(slowMaxMS)/1000, float64(idleMaxMS)/1000)
}
