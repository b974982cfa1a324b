// Command loadtest drives the model server with concurrent clients for a
// fixed time and reports latency percentiles, throughput and status codes.
// It exits 1 if any response is a 5xx other than a deliberate 503 (queue
// full, with Retry-After) or 429, or if a request fails in transport.
//
//	go run ./bench/loadtest -url http://127.0.0.1:8080 -model llm -c 32 -d 2m
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kfllm/kfllm/internal/kserve"
)

type result struct {
	latency time.Duration
	status  int
	tokens  int
	err     error
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	model := flag.String("model", "llm", "model name")
	clients := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 2*time.Minute, "test duration")
	maxTokens := flag.Int("max-tokens", 32, "max_new_tokens per request")
	route := flag.String("route", "v1", "v1 (KServe predict) or openai (completions; counts tokens)")
	jsonOut := flag.String("json", "", "also write the summary as JSON to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	results := make(chan result, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				results <- once(ctx, client, *url, *model, *route, *maxTokens, i, n)
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var lat []time.Duration
	codes := map[int]int{}
	var tokens, transport, bad int
	for r := range results {
		if r.err != nil {
			if ctx.Err() == nil {
				transport++
				fmt.Fprintln(os.Stderr, "loadtest:", r.err)
			}
			continue
		}
		codes[r.status]++
		if r.status == 200 {
			lat = append(lat, r.latency)
			tokens += r.tokens
		} else if r.status >= 500 && r.status != 503 {
			bad++
		}
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Seconds() * 1000
	}
	keys := make([]int, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	summary := map[string]any{
		"clients": *clients, "duration_s": elapsed.Seconds(), "route": *route, "max_new_tokens": *maxTokens,
		"ok": len(lat), "codes": codes, "transport_errors": transport, "unexpected_5xx": bad,
		"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
		"requests_per_s": float64(len(lat)) / elapsed.Seconds(), "tokens_per_s": float64(tokens) / elapsed.Seconds(),
	}
	fmt.Printf("clients %d, %.0fs, route %s: %d ok", *clients, elapsed.Seconds(), *route, len(lat))
	for _, k := range keys {
		fmt.Printf(", %d×%d", codes[k], k)
	}
	fmt.Printf("; p50 %.0f ms, p90 %.0f ms, p99 %.0f ms; %.2f req/s", pct(.5), pct(.9), pct(.99), float64(len(lat))/elapsed.Seconds())
	if *route == "openai" {
		fmt.Printf(", %.1f tokens/s", float64(tokens)/elapsed.Seconds())
	}
	fmt.Println()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(summary, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
	}
	if bad > 0 || transport > 0 || len(lat) == 0 {
		fmt.Fprintf(os.Stderr, "loadtest: FAIL: %d unexpected 5xx, %d transport errors, %d ok\n", bad, transport, len(lat))
		os.Exit(1)
	}
}

// once sends one request; client i's n-th request asks a question of its own.
func once(ctx context.Context, c *http.Client, url, model, route string, maxTokens, i, n int) result {
	var path string
	var body any
	q := fmt.Sprintf("What did client %d ask the %d-th time?", i, n)
	switch route {
	case "openai":
		path = "/openai/v1/completions"
		body = map[string]any{"model": model, "prompt": q, "max_tokens": maxTokens}
	default:
		path = "/v1/models/" + model + ":predict"
		body = kserve.PredictRequest{Instances: []kserve.Instance{{Context: "Load tests measure servers.", Question: q}},
			Parameters: kserve.Parameters{MaxNewTokens: &maxTokens}}
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(b))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{err: err}
	}
	r := result{latency: time.Since(start), status: resp.StatusCode}
	if resp.StatusCode == 200 && route == "openai" {
		var out struct {
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return result{err: fmt.Errorf("decode response: %w", err)}
		}
		r.tokens = out.Usage.CompletionTokens
	}
	return r
}
