package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/server"
)

// writeAdapter writes a PEFT LoRA adapter for the model in baseDir into
// dir, as peft's save_pretrained lays it out, with random non-zero lora_A
// and lora_B on the modules ending in one of targets.
func writeAdapter(t testing.TB, dir, baseDir, baseRef string, targets []string, r int, seed uint64) {
	t.Helper()
	m, err := model.Load(baseDir, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	randn := func(n int64) []byte {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.3)
		}
		return safetensors.BytesOfFloat32s(v)
	}
	var tensors []safetensors.Tensor
	paths := []string{}
	for p := range m.Linears() {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if !slices.ContainsFunc(targets, func(s string) bool { return strings.HasSuffix(p, "."+s) }) {
			continue
		}
		l := m.Linears()[p]
		in, out := l.InFeatures(), l.OutFeatures()
		tensors = append(tensors,
			safetensors.Tensor{Name: "base_model.model." + p + ".lora_A.weight", DType: safetensors.F32, Shape: []int64{int64(r), in}, Data: randn(int64(r) * in)},
			safetensors.Tensor{Name: "base_model.model." + p + ".lora_B.weight", DType: safetensors.F32, Shape: []int64{out, int64(r)}, Data: randn(out * int64(r))})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, model.AdapterWeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r,
		"lora_dropout": 0.0, "target_modules": targets, "base_model_name_or_path": baseRef, "bias": "none",
		"use_dora": false, "use_rslora": false, "modules_to_save": nil, "revision": nil})
	if err := os.WriteFile(filepath.Join(dir, model.AdapterConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
}

func startAdapterServer(t *testing.T, dir string, adapters []engine.AdapterRef) string {
	t.Helper()
	var names []string
	for _, a := range adapters {
		names = append(names, a.Name)
	}
	srv, err := server.New(server.Options{
		ModelName: "tiny", Adapters: names, Template: prompt.Template,
		Defaults: server.Defaults{MaxNewTokens: 12}, RequestTimeout: time.Minute,
		Load: func(ctx context.Context) (*server.Backend, error) {
			return engine.Load(ctx, engine.Options{ModelDir: dir, Adapters: adapters, Device: "cpu", DType: "float32",
				Scheduler: scheduler.Options{MaxBatch: 8, MaxNewTokens: 32}})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	s := &stack{t: t, url: "http://" + ln.Addr().String()}
	s.waitReady()
	return s.url
}

var adapterQuestions = []string{"What is the capital of France?", "Who runs pipelines?"}

// TestServeAdapters: two adapters beside the base, each a model name on
// every route; requests for all three, sent at once so that they share
// prefill and decode steps, answer as each does alone; the adapters answer
// differently from the base; an unknown name is a 404 in each protocol's
// shape.
func TestServeAdapters(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeTinyModel(t, base, 256)
	writeAdapter(t, filepath.Join(root, "a1"), base, base, []string{"q_proj", "v_proj", "down_proj"}, 4, 1)
	writeAdapter(t, filepath.Join(root, "a2"), base, base, []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, 8, 2)
	url := startAdapterServer(t, base, []engine.AdapterRef{{Name: "a1", Ref: filepath.Join(root, "a1")}, {Name: "a2", Ref: filepath.Join(root, "a2")}})
	s := &stack{t: t, url: url}
	names := []string{"tiny", "a1", "a2"}

	for _, path := range []string{"/v1/models", "/v2/models"} {
		r := s.call("GET", path, "")
		var got struct{ Models []string }
		json.Unmarshal([]byte(r.body), &got)
		if r.status != 200 || !slices.Equal(got.Models, names) {
			t.Errorf("GET %s: %d %s, want models %v", path, r.status, r.body, names)
		}
	}
	r := s.call("GET", "/openai/v1/models", "")
	for _, n := range names {
		if !strings.Contains(r.body, `"id":"`+n+`"`) {
			t.Errorf("/openai/v1/models %s lacks %s", r.body, n)
		}
	}

	ask := func(name, q string) string {
		r := s.call("POST", "/v1/models/"+name+":predict", fmt.Sprintf(`{"instances":[%q]}`, q))
		var out struct{ Predictions []string }
		if err := json.Unmarshal([]byte(r.body), &out); r.status != 200 || err != nil || len(out.Predictions) != 1 {
			t.Fatalf("predict %s: %d %s", name, r.status, r.body)
		}
		return out.Predictions[0]
	}
	alone := map[string]string{}
	for _, n := range names {
		for _, q := range adapterQuestions {
			alone[n+q] = ask(n, q)
		}
	}
	for _, q := range adapterQuestions {
		if alone["a1"+q] == alone["tiny"+q] || alone["a2"+q] == alone["tiny"+q] || alone["a1"+q] == alone["a2"+q] {
			t.Errorf("%q: base %q, a1 %q, a2 %q: the adapters do not change the answer", q, alone["tiny"+q], alone["a1"+q], alone["a2"+q])
		}
	}
	// All at once, three times over: the scheduler mixes them in its batches.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 3 {
		for _, n := range names {
			for _, q := range adapterQuestions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got := ask(n, q)
					mu.Lock()
					defer mu.Unlock()
					if got != alone[n+q] {
						t.Errorf("%s %q in a mixed batch: %q, alone %q", n, q, got, alone[n+q])
					}
				}()
			}
		}
	}
	wg.Wait()

	// V2 and OpenAI route by name to the same adapter.
	r = s.call("POST", "/v2/models/a1/infer", fmt.Sprintf(`{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":[%q]}]}`, adapterQuestions[0]))
	if !strings.Contains(r.body, fmt.Sprintf(`"data":[%q]`, alone["a1"+adapterQuestions[0]])) || !strings.Contains(r.body, `"model_name":"a1"`) {
		t.Errorf("V2 a1: %d %s, want %q", r.status, r.body, alone["a1"+adapterQuestions[0]])
	}
	r = s.call("POST", "/openai/v1/chat/completions", fmt.Sprintf(`{"model":"a2","messages":[{"role":"user","content":%q}]}`, adapterQuestions[1]))
	var chat struct {
		Model   string
		Choices []struct{ Message struct{ Content string } }
	}
	json.Unmarshal([]byte(r.body), &chat)
	if r.status != 200 || chat.Model != "a2" || len(chat.Choices) != 1 || chat.Choices[0].Message.Content != alone["a2"+adapterQuestions[1]] {
		t.Errorf("OpenAI chat a2: %d %s, want %q", r.status, r.body, alone["a2"+adapterQuestions[1]])
	}

	// Unknown names: 404 in each protocol's error shape.
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/models/nope:predict", `{"instances":["q"]}`, `{"error":"Model with name nope does not exist."}`},
		{"POST", "/v2/models/nope/infer", `{"inputs":[]}`, `{"error":"Model with name nope does not exist."}`},
		{"GET", "/v2/models/nope/ready", ``, `{"error":"Model with name nope does not exist."}`},
		{"POST", "/openai/v1/completions", `{"model":"nope","prompt":"q"}`, `"code":"model_not_found"`},
	} {
		r := s.call(c.method, c.path, c.body)
		if r.status != 404 || !strings.Contains(r.body, c.want) {
			t.Errorf("%s %s: %d %s, want 404 with %s", c.method, c.path, r.status, r.body, c.want)
		}
	}
}

// TestServeAdapterDir: a LoRA finetune's output (the base weights beside
// the adapter) served with --model-dir, and the same adapter alone on the
// Hub whose base_model_name_or_path is a Hub repo, answer alike, and not
// as the base does.
func TestServeAdapterDir(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeTinyModel(t, base, 256)
	adapterOnly := filepath.Join(root, "adapter")
	writeAdapter(t, adapterOnly, base, "kfllm/tiny-base", []string{"q_proj", "v_proj", "up_proj"}, 4, 3)
	run := filepath.Join(root, "run")
	os.MkdirAll(run, 0o755)
	for _, d := range []string{base, adapterOnly} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(d, e.Name()))
			os.WriteFile(filepath.Join(run, e.Name()), b, 0o644)
		}
	}
	readAll := func(d string) map[string][]byte {
		files := map[string][]byte{}
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(d, e.Name()))
			files[e.Name()] = b
		}
		return files
	}
	hs := hubtest.New(t)
	baseRepo := hs.AddRepo("model", "kfllm/tiny-base")
	baseRepo.SetPrivate(true) // the base needs HF_TOKEN as well
	baseRepo.CommitFiles("main", readAll(base))
	hs.AddRepo("model", "kfllm/tiny-lora").CommitFiles("main", readAll(adapterOnly))
	hubOpts := hub.New(hub.Options{Endpoint: hs.URL, Token: hs.Token, HTTPClient: hs.HTTPClient()})

	answer := func(o engine.Options) []string {
		t.Helper()
		o.Device, o.DType, o.CacheDir, o.Hub = "cpu", "float32", filepath.Join(root, "cache"), hubOpts
		b, err := engine.Load(context.Background(), o)
		if err != nil {
			t.Fatalf("load %+v: %v", o, err)
		}
		defer b.Close(context.Background())
		var out []string
		for _, q := range adapterQuestions {
			r, err := b.LLM.GenerateContent(context.Background(), []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, "Question: "+q)},
				llms.WithMaxTokens(12), llms.WithTemperature(0))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Choices[0].Content)
		}
		return out
	}
	baseAns := answer(engine.Options{ModelDir: base})
	runAns := answer(engine.Options{ModelDir: run})
	hubAns := answer(engine.Options{ModelID: "kfllm/tiny-lora"})
	if slices.Equal(runAns, baseAns) {
		t.Errorf("the LoRA run dir answers as its base: %q", runAns)
	}
	if !slices.Equal(hubAns, runAns) {
		t.Errorf("adapter from the Hub (base from the Hub) %q, from the run dir %q", hubAns, runAns)
	}

	// A base that cannot be found: a clear error naming it.
	lost := filepath.Join(root, "lost")
	writeAdapter(t, lost, base, "kfllm/no-such-base", []string{"q_proj"}, 2, 4)
	o := engine.Options{ModelDir: lost, Device: "cpu", DType: "float32", CacheDir: filepath.Join(root, "cache"), Hub: hubOpts}
	if _, err := engine.Load(context.Background(), o); err == nil || !strings.Contains(err.Error(), "kfllm/no-such-base") {
		t.Errorf("missing base: %v", err)
	}
}

// TestAdapterTrainedOnAnotherBase: a --lora-adapter whose
// base_model_name_or_path names another model than the served base is
// refused at load with both names and the flag that allows it (its shapes
// fit, so nothing else would catch it); with AllowBaseMismatch it loads and
// the startup log warns, naming both. An adapter that names the base by its
// Hub id (config.json's _name_or_path, in another case) or by its directory
// loads without a word.
func TestAdapterTrainedOnAnotherBase(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeTinyModel(t, base, 256)
	cfgPath := filepath.Join(base, "config.json")
	var cfg map[string]any
	b, err := os.ReadFile(cfgPath)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config.json: %v", err)
	}
	cfg["_name_or_path"] = "kfllm/tiny-base" // as transformers' save_pretrained writes it
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	writeAdapter(t, filepath.Join(root, "by-id"), base, "KFLLM/tiny-base", []string{"q_proj"}, 2, 5)
	writeAdapter(t, filepath.Join(root, "by-dir"), base, base+"/", []string{"v_proj"}, 2, 6)
	writeAdapter(t, filepath.Join(root, "other"), base, "someone/other-base", []string{"q_proj"}, 2, 7)

	load := func(allow bool, refs ...engine.AdapterRef) (string, error) {
		var log strings.Builder
		b, err := engine.Load(context.Background(), engine.Options{ModelDir: base, Adapters: refs, AllowBaseMismatch: allow,
			Device: "cpu", DType: "float32", Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err == nil {
			b.Close(context.Background())
		}
		return log.String(), err
	}
	same := []engine.AdapterRef{{Name: "by-id", Ref: filepath.Join(root, "by-id")}, {Name: "by-dir", Ref: filepath.Join(root, "by-dir")}}
	log, err := load(false, same...)
	if err != nil || strings.Contains(log, "WARN") {
		t.Fatalf("adapters trained on the served base: %v\n%s", err, log)
	}
	other := engine.AdapterRef{Name: "other", Ref: filepath.Join(root, "other")}
	_, err = load(false, append(same, other)...)
	if err == nil || !strings.Contains(err.Error(), "someone/other-base") || !strings.Contains(err.Error(), base) ||
		!strings.Contains(err.Error(), "--allow-base-mismatch") {
		t.Errorf("an adapter trained on someone/other-base loaded onto %s: %v", base, err)
	}
	log, err = load(true, other)
	if err != nil {
		t.Fatalf("--allow-base-mismatch: %v", err)
	}
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "adapter_base=someone/other-base") || !strings.Contains(log, "served_base="+base) {
		t.Errorf("--allow-base-mismatch: no warning naming both bases in the log:\n%s", log)
	}
}
