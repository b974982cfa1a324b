package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kfllm/kfllm/internal/gguf"
)

// prompts are plain-text openings that a small instruct model continues at
// length, so that most requests run to max_tokens on both servers.
var prompts = []string{
	"The history of the Roman Empire is a long story. It begins",
	"Here is a detailed recipe for bread, step by step. First,",
	"A guide to the planets of the solar system. Mercury is",
	"The rules of chess, explained for a beginner. The board",
	"Once upon a time, in a small village by the sea, there lived",
	"How a car engine works: a long explanation. Fuel enters",
	"The water cycle describes how water moves around the Earth. It",
	"Ten tips for learning a new language quickly. The first tip is",
}

func convertCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	in := fs.String("gguf", "", "the GGUF file")
	out := fs.String("out", "", "the Hugging Face model directory to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := gguf.ConvertLlama(ctx, *in, *out, gguf.ConvertOptions{}); err != nil {
		return fmt.Errorf("convert %s: %w", *in, err)
	}
	return nil
}

// measurement is one run of N clients against one server: a JSON line.
type measurement struct {
	Server    string  `json:"server"`
	Weights   string  `json:"weights"`
	Round     int     `json:"round"`
	Clients   int     `json:"clients"`
	Requests  int     `json:"requests"`
	Tokens    int     `json:"tokens"`
	Seconds   float64 `json:"seconds"`
	TokPerSec float64 `json:"tok_per_s"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// TextsSHA256 hashes the greedy answers in prompt order, so that two
	// servers on the same weights can be seen to give the same tokens.
	TextsSHA256 string   `json:"texts_sha256"`
	Texts       []string `json:"texts"`
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	url := fs.String("url", "", "server base URL")
	route := fs.String("route", "/v1/completions", "OpenAI completions route")
	model := fs.String("model", "", "model name")
	server := fs.String("server", "", "label: kfllm or llama.cpp")
	weights := fs.String("weights", "", "label: F32, Q4_1, ...")
	round := fs.Int("round", 1, "round number (label)")
	clients := fs.Int("clients", 1, "concurrent clients")
	perClient := fs.Int("requests", 2, "requests per client, one after another")
	maxTokens := fs.Int("max-tokens", 128, "max_tokens per request")
	pid := fs.Int("pid", 0, "server process to sample VmRSS from (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}, Timeout: 30 * time.Minute}
	// A warm-up request: first-use costs (page faults, thread start) out of the figures.
	if _, _, err := complete(ctx, client, *url+*route, *model, prompts[0], 8); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	peak := &rssSampler{pid: *pid}
	stopSampling := peak.start()
	m := measurement{Server: *server, Weights: *weights, Round: *round, Clients: *clients, Requests: *clients * *perClient}
	texts := make([]string, len(prompts))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range *perClient {
				i := (c + r**clients) % len(prompts)
				text, n, err := complete(ctx, client, *url+*route, *model, prompts[i], *maxTokens)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				m.Tokens += n
				texts[i] = text
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	m.Seconds = time.Since(start).Seconds()
	m.PeakRSSMB = stopSampling()
	if firstErr != nil {
		return firstErr
	}
	m.TokPerSec = float64(m.Tokens) / m.Seconds
	m.Texts = texts
	h := sha256.New()
	for _, t := range texts {
		fmt.Fprintf(h, "%d:%s", len(t), t)
	}
	m.TextsSHA256 = hex.EncodeToString(h.Sum(nil))
	return json.NewEncoder(os.Stdout).Encode(m)
}

// complete sends one greedy completion and returns its text and the number
// of completion tokens the server reports.
func complete(ctx context.Context, client *http.Client, url, model, prompt string, maxTokens int) (string, int, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": prompt, "max_tokens": maxTokens, "temperature": 0})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(raw))
	}
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) != 1 {
		return "", 0, fmt.Errorf("POST %s: unexpected response %.200s", url, raw)
	}
	return out.Choices[0].Text, out.Usage.CompletionTokens, nil
}

// rssSampler records the largest VmRSS of a process while a run lasts.
type rssSampler struct {
	pid  int
	peak float64
}

func (s *rssSampler) start() (stop func() float64) {
	if s.pid == 0 {
		return func() float64 { return 0 }
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if mb, ok := vmRSS(s.pid); ok && mb > s.peak {
				s.peak = mb
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 { close(done); <-finished; return s.peak }
}

func vmRSS(pid int) (float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}
