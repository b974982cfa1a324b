// Command rehearse runs the kfllm CPU images on this machine under runc, as
// the cluster would run them (make rehearse):
//
//  1. every component image starts its binary (--help) as uid 65532 on a
//     read-only root with a tmpfs /tmp;
//  2. the serving image serves a model mounted at /mnt/models (the demo's
//     base model, SmolLM2-135M-Instruct converted from make setup's GGUF),
//     with the arguments of manifests/api/inferenceservice.yaml, and answers
//     a KServe V1 predict; its process is checked from the host: uid 65532,
//     root mounted read-only;
//  3. the UI image, with the environment of manifests/ui/deployment.yaml
//     pointed at that server, answers one question through POST
//     /api/generate.
//
// Containers share the host's network (no CNI here), so the servers listen
// on free loopback ports instead of 8080 and 8081.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/image"
)

type options struct {
	images, work, baseGGUF, runtime string
	names                           []string
	log                             io.Writer
}

func main() {
	var o options
	var names string
	flag.StringVar(&o.images, "images", "out/rehearse/images", "the CPU images' OCI layouts (make images IMAGE_FLAVOR=cpu)")
	flag.StringVar(&names, "names", "", "the component images, space-separated")
	flag.StringVar(&o.work, "work", "out/rehearse", "work directory (root file systems, the model)")
	flag.StringVar(&o.baseGGUF, "base-gguf", filepath.Join(cacheDir(), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "the demo's base model (make setup fetches it)")
	flag.StringVar(&o.runtime, "runtime", "runc", "the OCI runtime")
	flag.Parse()
	o.names = strings.Fields(names)
	o.log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rehearse(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rehearse: %v\n", err)
		os.Exit(1)
	}
}

func cacheDir() string {
	if d := os.Getenv("KFLLM_CACHE"); d != "" {
		return d
	}
	d, _ := os.UserCacheDir()
	return filepath.Join(d, "kfllm")
}

func rehearse(ctx context.Context, o options) error {
	if len(o.names) == 0 {
		return errors.New("--names is required")
	}
	if _, err := exec.LookPath(o.runtime); err != nil {
		return fmt.Errorf("%s not found (apt-get install runc): %w", o.runtime, err)
	}
	start := time.Now()
	for _, n := range o.names {
		if err := o.help(ctx, n); err != nil {
			return err
		}
	}
	model := filepath.Join(o.work, "base-model")
	if _, err := os.Stat(filepath.Join(model, "config.json")); err != nil {
		fmt.Fprintf(o.log, "rehearse: converting %s into %s\n", o.baseGGUF, model)
		if err := gguf.ConvertLlama(ctx, o.baseGGUF, model, gguf.ConvertOptions{}); err != nil {
			return fmt.Errorf("base model: %w", err)
		}
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	uiPort, err := freePort()
	if err != nil {
		return err
	}
	// manifests/api/inferenceservice.yaml: the model from /mnt/models, as
	// KServe's storage initializer leaves it, instead of --model-id.
	api, err := o.start(ctx, "serving", image.Run{
		Args:   []string{"--model-name=llm-api", "--model-dir=/mnt/models", "--http-port=" + strconv.Itoa(apiPort)},
		Env:    []string{"MODEL_NAME=llm-api", "HF_HOME=/tmp/huggingface"},
		Mounts: []image.Mount{{Host: model, Container: "/mnt/models", ReadOnly: true}},
	})
	if err != nil {
		return err
	}
	defer api.stop()
	base := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	if err := waitOK(ctx, base+"/v1/models/llm-api", 5*time.Minute, api); err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	if err := api.checkProcess(); err != nil {
		return err
	}
	body := `{"instances":[{"context":"Ada Lovelace wrote the first program in 1843.","question":"When did Ada Lovelace write the first program?"}],"parameters":{"max_new_tokens":8}}`
	out, err := post(ctx, base+"/v1/models/llm-api:predict", body, nil)
	if err != nil {
		return fmt.Errorf("serving predict: %w", err)
	}
	fmt.Fprintf(o.log, "rehearse: serving  POST /v1/models/llm-api:predict -> %s\n", oneLine(out))
	var pred struct {
		Predictions []json.RawMessage `json:"predictions"`
	}
	if err := json.Unmarshal(out, &pred); err != nil || len(pred.Predictions) != 1 {
		return fmt.Errorf("serving predict: want one prediction, got %s", oneLine(out))
	}
	// manifests/ui/deployment.yaml, API_URL pointed at the server above.
	ui, err := o.start(ctx, "ui", image.Run{
		Args: []string{"--port=" + strconv.Itoa(uiPort)},
		Env:  []string{"API_URL=" + base, "MODEL_NAME=llm-api"},
	})
	if err != nil {
		return err
	}
	defer ui.stop()
	uiBase := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	if err := waitOK(ctx, uiBase+"/healthz", time.Minute, ui); err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	if err := ui.checkProcess(); err != nil {
		return err
	}
	q := `{"context":"Ada Lovelace wrote the first program in 1843.","question":"When did Ada Lovelace write the first program?","max_new_tokens":8}`
	out, err = post(ctx, uiBase+"/api/generate", q, map[string]string{"Origin": uiBase})
	if err != nil {
		return fmt.Errorf("ui question: %w", err)
	}
	fmt.Fprintf(o.log, "rehearse: ui       POST /api/generate -> %s\n", oneLine(out))
	fmt.Fprintf(o.log, "rehearse: passed in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// help runs NAME --help in its image and wants a usage text.
func (o options) help(ctx context.Context, name string) error {
	c, err := o.start(ctx, name, image.Run{Args: []string{"--help"}})
	if err != nil {
		return err
	}
	err = c.wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return fmt.Errorf("%s --help: %w", name, err)
	}
	text := c.out.String()
	if (code != 0 && code != 2) || !strings.Contains(strings.ToLower(text), "usage") {
		return fmt.Errorf("%s --help in its image: exit %d, output %q", name, code, text)
	}
	fmt.Fprintf(o.log, "rehearse: %-9s --help as uid 65532, read-only root: exit %d, %q\n", name, code, firstLine(text))
	return nil
}

type container struct {
	id, runtime string
	cmd         *exec.Cmd
	out         *syncBuffer
	done        chan error
	err         error
}

func (o options) start(ctx context.Context, name string, r image.Run) (*container, error) {
	root, cfg, err := image.Rootfs(filepath.Join(o.images, name), filepath.Join(o.work, "rootfs"))
	if err != nil {
		return nil, err
	}
	if cfg.Config.User != "65532:65532" {
		return nil, fmt.Errorf("%s: image user %q, want 65532:65532", name, cfg.Config.User)
	}
	bundle, err := os.MkdirTemp("", "kfllm-rehearse-"+name+"-")
	if err != nil {
		return nil, err
	}
	if err := image.Bundle(bundle, root, cfg, r); err != nil {
		return nil, err
	}
	c := &container{id: fmt.Sprintf("kfllm-rehearse-%s-%d", name, os.Getpid()), runtime: o.runtime, out: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.CommandContext(ctx, o.runtime, "run", "--bundle", bundle, c.id)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.Cancel = func() error { return exec.Command(o.runtime, "kill", c.id, "KILL").Run() }
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("%s: %w", o.runtime, err)
	}
	go func() {
		c.done <- c.cmd.Wait()
		os.RemoveAll(bundle)
	}()
	return c, nil
}

func (c *container) wait() error {
	if c.done != nil {
		c.err = <-c.done
		c.done = nil
	}
	return c.err
}

func (c *container) exited() bool {
	if c.done == nil {
		return true
	}
	select {
	case c.err = <-c.done:
		c.done = nil
		return true
	default:
		return false
	}
}

func (c *container) stop() {
	if !c.exited() {
		_ = exec.Command(c.runtime, "kill", c.id, "TERM").Run()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			_ = exec.Command(c.runtime, "kill", c.id, "KILL").Run()
			<-c.done
		}
		c.done = nil
	}
	_ = exec.Command(c.runtime, "delete", "--force", c.id).Run()
}

// checkProcess reads the container's process from the host: its uid and
// whether its root is mounted read-only.
func (c *container) checkProcess() error {
	st, err := exec.Command(c.runtime, "state", c.id).Output()
	if err != nil {
		return fmt.Errorf("%s state %s: %w", c.runtime, c.id, err)
	}
	var s struct{ Pid int }
	if err := json.Unmarshal(st, &s); err != nil || s.Pid == 0 {
		return fmt.Errorf("%s state %s: no pid in %s", c.runtime, c.id, st)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid))
	if err != nil {
		return err
	}
	var uid string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid = strings.Join(strings.Fields(v), " ")
		}
	}
	if uid != "65532 65532 65532 65532" {
		return fmt.Errorf("%s: process uids %q, want 65532", c.id, uid)
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", s.Pid))
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			if !strings.Contains(","+f[5]+",", ",ro,") {
				return fmt.Errorf("%s: root mounted %s, want ro", c.id, f[5])
			}
			fmt.Fprintf(os.Stderr, "rehearse: %s runs as uid %s, root %s\n", c.id, strings.Fields(uid)[0], f[5])
			return nil
		}
	}
	return fmt.Errorf("%s: no root mount in /proc/%d/mountinfo", c.id, s.Pid)
}

func waitOK(ctx context.Context, url string, limit time.Duration, c *container) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c.exited() {
			return fmt.Errorf("the container exited (%v): %s", c.err, c.out.String())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("GET %s not 200 after %s; output: %s", url, limit, c.out.String())
}

func post(ctx context.Context, url, body string, header map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, oneLine(b))
	}
	return b, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// syncBuffer is a bytes.Buffer the container's output goroutines and the
// checks share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
