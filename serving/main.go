// Command serving is the KServe model server: KServe V1 and V2 and
// OpenAI-compatible routes over the fine-tuned model (see internal/server
// for the routes and internal/engine for loading).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/langsmith"
)

const help = `
Environment (flags win):
  MODEL_NAME, MODEL_ID                         as --model-name, --model-id
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
	var o engine.ServeOptions
	var port int
	flag.StringVar(&o.Server.ModelName, "model-name", os.Getenv("MODEL_NAME"), "name the routes answer to (required)")
	flag.StringVar(&o.Engine.ModelDir, "model-dir", "", "Hugging Face model directory (KServe mounts /mnt/models), or a Llama GGUF file or a directory holding one")
	quantized := flag.Bool("quantized", true, "GGUF models: multiply by the file's Q8_0/Q4_0/Q4_1 blocks (CPU, float32); false dequantizes to float32 at load")
	flag.StringVar(&o.Engine.ModelID, "model-id", os.Getenv("MODEL_ID"), "OWNER/NAME[@revision] on the Hub (--model-dir wins when both are given)")
	flag.IntVar(&port, "http-port", 8080, "port to listen on")
	flag.StringVar(&o.Backend, "backend", envOr("BACKEND", "local"), "local (our model) | huggingface | openai (a hosted model named by --model-id)")
	flag.StringVar(&o.Remote.URL, "backend-url", os.Getenv("BACKEND_URL"), "huggingface: TGI or Inference Endpoint URL (default: the serverless API); openai: the /v1 base URL")
	flag.StringVar(&o.Engine.Device, "device", "auto", "auto|cpu|cuda")
	flag.StringVar(&o.Engine.DType, "dtype", "auto", "auto|float32|bfloat16")
	flag.IntVar(&o.Engine.Threads, "threads", 0, "libtorch intra-op threads (0: libtorch's default)")
	flag.IntVar(&o.Engine.Scheduler.MaxBatch, "max-batch", 8, "sequences decoded together")
	flag.IntVar(&o.Engine.Scheduler.QueueSize, "queue-size", 64, "requests waiting for a batch slot before 503s")
	flag.IntVar(&o.Engine.Scheduler.MaxNewTokens, "max-new-tokens", 512, "cap on a request's max_new_tokens")
	flag.IntVar(&o.Server.Defaults.MaxNewTokens, "default-max-new-tokens", 128, "max_new_tokens when a request gives none")
	flag.DurationVar(&o.Server.RequestTimeout, "request-timeout", 0, "per-request generation timeout (default 2m)")
	flag.Int64Var(&o.Server.MaxBodyBytes, "max-body-bytes", 1<<20, "request body limit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: serving --model-name NAME (--model-dir DIR|FILE.gguf | --model-id OWNER/NAME[@rev]) [flags]")
		flag.PrintDefaults()
		fmt.Fprint(os.Stderr, help)
	}
	flag.Parse()
	if o.Server.ModelName == "" || (o.Engine.ModelDir == "" && o.Engine.ModelID == "") || flag.NArg() > 0 ||
		(o.Backend != "local" && o.Engine.ModelID == "") {
		flag.Usage()
		os.Exit(2)
	}
	o.Addr = fmt.Sprintf(":%d", port)
	o.Engine.Dequantize = !*quantized
	o.Engine.Hub = hub.EnvOptions(os.Getenv)
	o.Remote.Model, o.Remote.Token = o.Engine.ModelID, o.Engine.Hub.Token
	if o.Backend == "openai" {
		o.Remote.Token = os.Getenv("OPENAI_API_KEY")
	}
	o.LangSmith = langsmith.ConfigFromEnv(os.Getenv)
	o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := engine.Serve(ctx, o); err != nil {
		o.Logger.Error("serving failed", "err", err)
		os.Exit(1)
	}
}
