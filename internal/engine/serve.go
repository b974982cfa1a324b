package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/remote"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/torch"
)

// ServeOptions configure the serving command.
type ServeOptions struct {
	// Addr is the listen address, e.g. ":8080" (KServe's default port).
	Addr string
	// Backend is "local" (our model, Engine) or a remote kind
	// ("huggingface", "openai": Remote). Empty means local.
	Backend string
	// Engine says which model to load and how (local backend).
	Engine Options
	// Remote reaches a hosted model (remote backends); Kind is set from Backend.
	Remote remote.Options
	// Server holds the HTTP options; Template, Load and Tracer are filled in.
	Server server.Options
	// LangSmith is read from the environment by the caller (ConfigFromEnv).
	LangSmith langsmith.Config
	// Logger is used everywhere (default slog.Default()).
	Logger *slog.Logger
}

// Serve listens on o.Addr at once, loads the model in the background,
// serves until ctx ends, then drains in-flight requests and flushes traces.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var tracer *langsmith.Tracer
	if o.LangSmith.Tracing {
		tracer = langsmith.NewTracer(langsmith.NewClient(o.LangSmith, langsmith.ClientOptions{}),
			langsmith.TracerOptions{Logger: o.Logger})
		o.Logger.Info("langsmith tracing on", "endpoint", o.LangSmith.Endpoint, "project", o.LangSmith.Project)
	}
	so := o.Server
	so.Template = prompt.Template
	so.Tracer = tracer
	so.Logger = o.Logger
	switch o.Backend {
	case "", "local":
		torch.TuneAllocatorForServing() // a long-running process: keep RSS flat
		eo := o.Engine
		eo.Logger = o.Logger
		for _, a := range eo.Adapters {
			so.Adapters = append(so.Adapters, a.Name)
		}
		so.Load = func(ctx context.Context) (*server.Backend, error) { return Load(ctx, eo) }
	case remote.HuggingFace, remote.OpenAI:
		if len(o.Engine.Adapters) > 0 {
			return fmt.Errorf("lora adapters are served by the local backend only, not %s", o.Backend)
		}
		ro := o.Remote
		ro.Kind, ro.Logger = o.Backend, o.Logger
		so.Load = func(ctx context.Context) (*server.Backend, error) { return remote.Load(ctx, ro) }
	default:
		return fmt.Errorf("unknown backend %q (local, huggingface or openai)", o.Backend)
	}
	srv, err := server.New(so)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Addr, err)
	}
	return srv.Serve(ctx, ln)
}
