// Command serving is the KServe model server: KServe V1 and V2 and
// OpenAI-compatible routes over the fine-tuned model (see internal/serve
// for the wiring, internal/server for the routes and internal/engine for
// the model).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/serve"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/torch"
)

const help = `
Environment (flags win):
  MODEL_NAME, MODEL_ID                         as --model-name, --model-id
  LORA_ADAPTERS=name=ref,name2=ref2            more --lora-adapter items (after the flags')
  BACKEND, BACKEND_URL                         as --backend, --backend-url
  HF_TOKEN, HF_ENDPOINT                        Hub access for --model-id, and the huggingface backend's
                                               token (never logged)
  OPENAI_API_KEY                               the openai backend's API key (optional)
  LANGSMITH_TRACING_V2|LANGSMITH_TRACING       "true" turns tracing on (LANGCHAIN_* are read too;
  LANGSMITH_ENDPOINT, _API_KEY, _PROJECT       LANGSMITH_* wins, as in the LangSmith SDK)
`

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o serve.Options
	var eo engine.Options // the local backend's model
	var port int
	flag.StringVar(&o.Server.ModelName, "model-name", os.Getenv("MODEL_NAME"), "name the routes answer to (required)")
	flag.StringVar(&eo.ModelDir, "model-dir", "", "Hugging Face model directory (KServe mounts /mnt/models), a PEFT LoRA adapter directory, or a Llama GGUF file or a directory holding one")
	var adapters []string
	flag.Func("lora-adapter", "NAME=DIR|OWNER/NAME[@rev]: serve a LoRA adapter on the same base as model NAME (repeatable)", func(v string) error {
		adapters = append(adapters, v)
		return nil
	})
	flag.BoolVar(&eo.AllowBaseMismatch, "allow-base-mismatch", false, "serve a --lora-adapter whose base_model_name_or_path names another base than the served one (with a warning) instead of refusing it")
	flag.StringVar(&eo.ModelID, "model-id", os.Getenv("MODEL_ID"), "OWNER/NAME[@revision] on the Hub, a model or a PEFT LoRA adapter (--model-dir wins when both are given)")
	quantized := flag.Bool("quantized", true, "GGUF models: multiply by the file's Q8_0/Q4_0/Q4_1 blocks (CPU, float32); false dequantizes to float32 at load")
	flag.IntVar(&port, "http-port", 8080, "port to listen on")
	flag.StringVar(&o.Backend, "backend", envOr("BACKEND", "local"), "local (our model) | huggingface | openai (a hosted model named by --model-id)")
	flag.StringVar(&o.Remote.URL, "backend-url", os.Getenv("BACKEND_URL"), "huggingface: TGI or Inference Endpoint URL (default: the serverless API); openai: the /v1 base URL")
	flag.StringVar(&eo.Device, "device", "auto", "auto|cpu|cuda|cuda:N (auto: CUDA when libtorch sees a device, else the CPU; auto and cuda mean cuda:0; cuda:N pins device N)")
	flag.StringVar(&eo.DType, "dtype", "auto", "auto|float32|bfloat16")
	flag.IntVar(&eo.Threads, "threads", 0, "libtorch intra-op threads (0: libtorch's default)")
	flag.IntVar(&eo.Scheduler.MaxBatch, "max-batch", 8, "sequences decoded together")
	flag.IntVar(&eo.Scheduler.QueueSize, "queue-size", 64, "requests waiting for a batch slot before 503s")
	flag.IntVar(&eo.Scheduler.MaxNewTokens, "max-new-tokens", 512, "cap on a request's max_new_tokens")
	flag.IntVar(&o.Server.Defaults.MaxNewTokens, "default-max-new-tokens", 128, "max_new_tokens when a request gives none")
	flag.DurationVar(&o.Server.RequestTimeout, "request-timeout", 0, "per-request generation timeout (default 2m)")
	flag.Int64Var(&o.Server.MaxBodyBytes, "max-body-bytes", 1<<20, "request body limit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: serving --model-name NAME (--model-dir DIR|FILE.gguf | --model-id OWNER/NAME[@rev]) [flags]")
		flag.PrintDefaults()
		fmt.Fprint(os.Stderr, help)
	}
	flag.Parse()
	if o.Server.ModelName == "" || (eo.ModelDir == "" && eo.ModelID == "") || flag.NArg() > 0 ||
		(o.Backend != "local" && eo.ModelID == "") {
		flag.Usage()
		os.Exit(2)
	}
	if env := os.Getenv("LORA_ADAPTERS"); env != "" {
		adapters = append(adapters, strings.Split(env, ",")...)
	}
	refs, err := engine.ParseAdapterRefs(adapters, o.Server.ModelName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serving:", err)
		os.Exit(2)
	}
	eo.Adapters = refs
	for _, a := range refs {
		o.Server.Adapters = append(o.Server.Adapters, a.Name)
	}
	o.Addr = fmt.Sprintf(":%d", port)
	eo.Dequantize = !*quantized
	env := hub.EnvOptions(os.Getenv) // HF_TOKEN and HF_ENDPOINT, read once
	eo.Hub = hub.New(env)
	o.Remote.Model, o.Remote.Token = eo.ModelID, env.Token // the hosted Inference API takes the same token
	if o.Backend == "openai" {
		o.Remote.Token = os.Getenv("OPENAI_API_KEY")
	}
	o.LangSmith = langsmith.ConfigFromEnv(os.Getenv)
	o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	eo.Logger = o.Logger
	o.Local = func(ctx context.Context) (*server.Backend, error) { return engine.Load(ctx, eo) }
	if serve.IsLocal(o.Backend) {
		torch.TuneAllocatorForServing() // a long-running process: keep RSS flat
	}
	if err := serve.Run(ctx, o); err != nil {
		o.Logger.Error("serving failed", "err", err)
		os.Exit(1)
	}
}
