package rehearse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/image"
	"github.com/kfllm/kfllm/internal/kfp/local"
	"github.com/kfllm/kfllm/internal/linewriter"
	"github.com/kfllm/kfllm/internal/synth"
)

// Options configure a rehearsal.
type Options struct {
	// Images holds the CPU images' OCI layouts (make images IMAGE_FLAVOR=cpu).
	Images string
	// Names are the component images whose --help is checked.
	Names []string
	// Work holds the data, the runs, the bundles (default out/rehearse).
	Work string
	// Rootfs holds the images' unpacked root file systems, one per digest
	// (default WORK/rootfs).
	Rootfs string
	// Runtime is the OCI runtime binary (default runc).
	Runtime string
	// Pipeline is the compiled pipeline YAML (pipeline compile).
	Pipeline string
	// Manifests is the manifests directory (api/, ui/).
	Manifests string
	// BaseGGUF is the demo's base model (make setup fetches it).
	BaseGGUF string
	// Train, Eval, Seed and MaxSteps are the demo's sizes (internal/demo
	// defaults: 1000, 100, 1, 30).
	Train, Eval int
	Seed        int64
	MaxSteps    int
	// Params override make demo's pipeline parameters (tests: a tiny
	// model's limits).
	Params map[string]string
	// Context and Question, when set, are asked instead of the first
	// held-out record.
	Context, Question string
	// Launcher is the KFP backend whose launcher the tasks' containers
	// follow (default KFP 2.14's layout).
	Launcher local.Launcher
	// BrowserTest, when set, is run while the UI container serves, with
	// KFLLM_UI_URL and KFLLM_UI_MODEL in its environment (the Makefile runs ui/server's TestBrowserDeployedUI).
	BrowserTest []string
	// Log receives the progress (os.Stderr when nil).
	Log io.Writer
}

func (o *Options) defaults() {
	if o.Work == "" {
		o.Work = filepath.Join("out", "rehearse")
	}
	if o.Train == 0 {
		o.Train = 1000
	}
	if o.Eval == 0 {
		o.Eval = 100
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.MaxSteps == 0 {
		o.MaxSteps = 30
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	// The containers' output is copied to Log from their own goroutines
	// while the rehearsal writes its progress: one lock keeps lines whole.
	o.Log = linewriter.Locked(o.Log)
}

// Result is what a rehearsal measured.
type Result struct {
	Metrics  Metrics
	Question string
	Expected string
	Answer   string
	// Stages are the durations of the steps.
	Stages map[string]time.Duration
}

// Run runs the rehearsal (see the package documentation).
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	rc := &Runc{Runtime: o.Runtime, Images: o.Images, Work: o.Work, Rootfs: o.Rootfs}
	if _, err := exec.LookPath(rc.runtime()); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install runc): %w", rc.runtime(), err)
	}
	var err error
	if o.Work, err = filepath.Abs(o.Work); err != nil {
		return nil, err
	}
	rc.Work = o.Work
	if err := rc.pruneRootfs(); err != nil {
		return nil, err
	}
	res := &Result{Stages: map[string]time.Duration{}}
	stage := func(name string, fn func() error) error {
		start := time.Now()
		fmt.Fprintf(o.Log, "\nrehearse: ==> %s\n", name)
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.Stages[name] = time.Since(start)
		fmt.Fprintf(o.Log, "rehearse: <== %s in %.1fs\n", name, res.Stages[name].Seconds())
		return nil
	}
	if err := stage("--help in each image", func() error {
		for _, n := range o.Names {
			if err := o.help(ctx, rc, n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	var run *pipelineRun
	if err := stage("the pipeline, task by task in the images", func() error {
		run, err = o.pipeline(ctx, rc)
		return err
	}); err != nil {
		return res, err
	}
	if o.Question != "" {
		run.question = synth.Record{Context: o.Context, Question: o.Question}
	}
	res.Metrics, res.Question, res.Expected = run.metrics, run.question.Question, run.question.Answer
	var c *cluster
	defer func() {
		if c != nil {
			c.stop()
		}
	}()
	if err := stage("serving and the UI from the manifests", func() error {
		c, err = o.serve(ctx, rc, run.model)
		return err
	}); err != nil {
		return res, err
	}
	if err := stage("one question through the UI", func() error {
		res.Answer, err = c.ask(ctx, run.question.Context, run.question.Question)
		if err == nil {
			fmt.Fprintf(o.Log, "rehearse: context:  %s\nrehearse: question: %s\nrehearse: answer:   %s   (expected %q)\n", run.question.Context, run.question.Question, res.Answer, run.question.Answer)
		}
		return err
	}); err != nil {
		return res, err
	}
	if len(o.BrowserTest) > 0 {
		if err := stage("the browser test against the UI container", func() error {
			return o.browser(ctx, c)
		}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// help runs NAME --help in its image and wants a usage text.
func (o Options) help(ctx context.Context, rc *Runc, name string) error {
	c, err := rc.start(ctx, name, image.Run{Args: []string{"--help"}}, nil)
	if err != nil {
		return err
	}
	defer c.delete()
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
	fmt.Fprintf(o.Log, "rehearse: %-9s --help as uid %d, read-only root: exit %d, %q\n", name, ImageUser, code, firstLine(text))
	return nil
}

// browser runs the UI's browser test against the UI container.
func (o Options) browser(ctx context.Context, c *cluster) error {
	cmd := exec.CommandContext(ctx, o.BrowserTest[0], o.BrowserTest[1:]...)
	// The page's own sample question: the held-out one was asked above.
	cmd.Env = append(os.Environ(), "KFLLM_UI_URL="+c.uiURL, "KFLLM_UI_MODEL="+c.model)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(o.BrowserTest, " "), err)
	}
	return nil
}

func waitOK(ctx context.Context, url string, limit time.Duration, c *container) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c.exited() {
			return fmt.Errorf("the container exited (%v): %s", c.err, c.out.String())
		}
		if status(ctx, url) == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("GET %s not 200 after %s; output: %s", url, limit, c.out.String())
}

// status is a GET's status code, 0 when it failed.
func status(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func post(ctx context.Context, url string, body any, header map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
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
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %s", url, resp.Status, oneLine(out))
	}
	return out, nil
}

// sseAnswer reads the UI's event stream: the tokens, or the final
// prediction, or the error it reports.
func sseAnswer(b []byte) (string, error) {
	var answer strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Token, Prediction, Error string
			Done                     bool
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return "", fmt.Errorf("event %q: %w", data, err)
		}
		if ev.Error != "" {
			return "", fmt.Errorf("the UI reported: %s", ev.Error)
		}
		answer.WriteString(ev.Token)
		if ev.Done && ev.Prediction != "" {
			return ev.Prediction, nil
		}
	}
	return answer.String(), nil
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
