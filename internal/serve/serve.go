package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/remote"
	"github.com/kfllm/kfllm/internal/server"
)

// Options configure the serving command.
type Options struct {
	// Addr is the listen address, e.g. ":8080" (KServe's default port).
	Addr string
	// Backend is "local" (our model, through Local) or a remote kind
	// ("huggingface", "openai": Remote). Empty means local.
	Backend string
	// Local loads our own model (serving's main passes engine.Load, which
	// links libtorch); called in the background once the port is open.
	Local func(context.Context) (*server.Backend, error)
	// Remote reaches a hosted model (remote backends); Kind is set from Backend.
	Remote remote.Options
	// Server holds the HTTP options; Template, Load and Tracer are filled in.
	Server server.Options
	// LangSmith is read from the environment by the caller (ConfigFromEnv).
	LangSmith langsmith.Config
	// Logger is used everywhere (default slog.Default()).
	Logger *slog.Logger
}

// IsLocal reports whether backend names our own model ("local" or empty).
func IsLocal(backend string) bool { return backend == "" || backend == "local" }

// Run listens on o.Addr at once, loads the model in the background,
// serves until ctx ends, then drains in-flight requests and flushes traces.
func Run(ctx context.Context, o Options) error {
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
	switch {
	case IsLocal(o.Backend):
		if o.Local == nil {
			return fmt.Errorf("backend local: no model loader")
		}
		so.Load = o.Local
	case o.Backend == remote.HuggingFace, o.Backend == remote.OpenAI:
		if len(so.Adapters) > 0 {
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
