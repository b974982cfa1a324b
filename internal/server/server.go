package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/outputparser"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/scheduler"
)

// Backend is a loaded model: the llms.Model the chain calls, and what the
// server reports about it.
type Backend struct {
	// LLM generates completions; LocalLLM for our own model.
	LLM llms.Model
	// Info goes into traces (model id, revision, provider).
	Info ModelInfo
	// Stats, if set, feeds the queue and token gauges of /metrics.
	Stats func() scheduler.Stats
	// Ready, if set, is asked by the readiness routes after loading (for
	// remote backends whose upstream may come and go). Nil means ready.
	Ready func(ctx context.Context) bool
	// Close releases the model once the server has drained.
	Close func(ctx context.Context) error
}

// Options configure a Server. ModelName, Template and Load are required.
type Options struct {
	// ModelName is the name routes answer to (KServe's model name).
	ModelName string
	// Adapters are more names the routes answer to: LoRA adapters on the
	// same base, which the backend's LLM receives as llms.WithModel (see
	// docs/design.md). Listed after ModelName.
	Adapters []string
	// Template is the prompt, with {context} and {question} placeholders
	// (prompt.Template).
	Template string
	// Load loads the model. It runs in the background after Serve starts
	// listening; until it returns, model routes answer 503.
	Load func(ctx context.Context) (*Backend, error)
	// Tracer sends traces and feedback; nil when tracing is off. Serve
	// closes it (flushing) on shutdown.
	Tracer *langsmith.Tracer
	// Defaults fill in generation parameters a request leaves out
	// (default 128 new tokens, temperature 0: greedy).
	Defaults Defaults
	// RequestTimeout bounds one request's generation (default 120 s).
	RequestTimeout time.Duration
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxInstances limits instances per request (default 32).
	MaxInstances int
	// RetryAfter is sent with 503s for a full queue or a loading model (default 1 s).
	RetryAfter time.Duration
	// ShutdownTimeout bounds the whole shutdown: in-flight requests, the
	// backend and the trace flush (default 25 s, inside Kubernetes' default
	// 30 s terminationGracePeriodSeconds).
	ShutdownTimeout time.Duration
	// ReadTimeout bounds reading one request, headers and body (default
	// 30 s): a client trickling its body is cut off. It does not bound the
	// answer, which may stream for up to RequestTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has had no request
	// for this long (default 2 min).
	IdleTimeout time.Duration
	// Logger gets structured logs (default slog.Default()).
	Logger *slog.Logger
}

// state is the loaded model; nil while loading.
type state struct {
	backend *Backend
	qa      *chain // the docs/design.md §4 question-answering prompt
	raw     *chain // the identity prompt, for OpenAI completions
}

// Server is the KServe model server.
type Server struct {
	opts    Options
	log     *slog.Logger
	st      atomic.Pointer[state]
	metrics *metrics
	handler http.Handler
	created int64
	loadMu  sync.Mutex
}

// New checks opts and builds the routes. Serve starts it.
func New(opts Options) (*Server, error) {
	if opts.ModelName == "" || opts.Template == "" || opts.Load == nil {
		return nil, errors.New("server: ModelName, Template and Load are required")
	}
	for i, a := range opts.Adapters {
		if a == "" || a == opts.ModelName || slices.Contains(opts.Adapters[:i], a) || strings.ContainsAny(a, "/:") {
			return nil, fmt.Errorf("server: adapter name %q is empty, repeated, the model's name or holds / or :", a)
		}
	}
	if opts.Defaults.MaxNewTokens <= 0 {
		opts.Defaults.MaxNewTokens = 128
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 120 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = 32
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Check the template now, not at the first request.
	if _, err := newChain(opts.Template, []string{"context", "question"}, "qa", outputparser.NewSimple(), nil, nil, ModelInfo{}, "", opts.Defaults); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, created: time.Now().Unix()}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler (routes, metrics, recovery, logs).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Load runs opts.Load and makes the model ready. Serve calls it; tests that
// use Handler directly may call it themselves.
func (s *Server) Load(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.st.Load() != nil {
		return nil
	}
	start := time.Now()
	b, err := s.opts.Load(ctx)
	if err != nil {
		return fmt.Errorf("load model %s: %w", s.opts.ModelName, err)
	}
	if b == nil || b.LLM == nil {
		return fmt.Errorf("load model %s: the loader returned no model", s.opts.ModelName)
	}
	if b.Info.LLMName == "" {
		b.Info.LLMName = "KFLLM"
	}
	qa, err := newChain(s.opts.Template, []string{"context", "question"}, "qa", outputparser.NewSimple(), b.LLM, s.opts.Tracer, b.Info, s.opts.ModelName, s.opts.Defaults)
	if err != nil {
		return err
	}
	raw, err := newChain("{prompt}", []string{"prompt"}, "raw", verbatim{}, b.LLM, s.opts.Tracer, b.Info, s.opts.ModelName, s.opts.Defaults)
	if err != nil {
		return err
	}
	s.st.Store(&state{backend: b, qa: qa, raw: raw})
	s.log.Info("model ready", "model", s.opts.ModelName, "id", b.Info.ID, "revision", b.Info.Revision,
		"provider", b.Info.Provider, "load_seconds", time.Since(start).Seconds())
	return nil
}

// ready returns the state if the model is loaded and its backend is up.
func (s *Server) ready(ctx context.Context) *state {
	st := s.st.Load()
	if st == nil {
		return nil
	}
	if st.backend.Ready != nil && !st.backend.Ready(ctx) {
		return nil
	}
	return st
}

// Serve listens on ln at once, loads the model in the background, and
// serves until ctx ends; then it stops accepting connections, lets
// in-flight requests finish (up to ShutdownTimeout), closes the backend and
// flushes the tracer. It returns the load error if loading fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(10*time.Second, s.opts.ReadTimeout),
		ReadTimeout:       s.opts.ReadTimeout,
		// No WriteTimeout: an answer streams for up to RequestTimeout, which
		// the handlers enforce through the request's context.
		IdleTimeout: s.opts.IdleTimeout,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "model", s.opts.ModelName)

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loadErr := make(chan error, 1)
	go func() { loadErr <- s.Load(loadCtx) }()

	var result error
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case err := <-loadErr:
			if err != nil {
				result = err
				waiting = false
			}
			loadErr = nil
		case err := <-serveErr:
			result = fmt.Errorf("serve: %w", err)
			waiting = false
		}
	}
	s.log.Info("shutting down", "timeout", s.opts.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("shutdown: requests still in flight were cut", "err", err)
		hs.Close()
	}
	cancelLoad()
	if st := s.st.Load(); st != nil && st.backend.Close != nil {
		if err := st.backend.Close(sctx); err != nil {
			s.log.Warn("close backend", "err", err)
		}
	}
	if err := s.opts.Tracer.Close(sctx); err != nil {
		s.log.Warn("langsmith: traces not flushed", "err", err)
	}
	st := s.opts.Tracer.Stats()
	s.log.Info("stopped", "traces_sent_runs", st.RunsSent, "traces_dropped_runs", st.RunsDropped, "traces_failed_runs", st.RunsFailed)
	return result
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Not Found: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	})
	name := "{name:[^/:]+}"
	r.HandleFunc("/", s.live).Methods(http.MethodGet)
	r.HandleFunc("/v1/models", s.v1Models).Methods(http.MethodGet)
	r.HandleFunc("/v1/models/"+name, s.v1Model).Methods(http.MethodGet)
	r.HandleFunc("/v1/models/"+name+":predict", s.v1Predict).Methods(http.MethodPost)
	r.HandleFunc("/v1/feedback", s.feedback).Methods(http.MethodPost)

	r.HandleFunc("/v2/health/live", s.v2Live).Methods(http.MethodGet)
	r.HandleFunc("/v2/health/ready", s.v2Ready).Methods(http.MethodGet)
	r.HandleFunc("/v2/models", s.v2Models).Methods(http.MethodGet)
	r.HandleFunc("/v2/models/"+name, s.v2Metadata).Methods(http.MethodGet)
	r.HandleFunc("/v2/models/"+name+"/ready", s.v2ModelReady).Methods(http.MethodGet)
	r.HandleFunc("/v2/models/"+name+"/infer", s.v2Infer).Methods(http.MethodPost)

	r.HandleFunc("/openai/v1/models", s.openaiModels).Methods(http.MethodGet)
	r.HandleFunc("/openai/v1/completions", s.openaiCompletions).Methods(http.MethodPost)
	r.HandleFunc("/openai/v1/chat/completions", s.openaiChat).Methods(http.MethodPost)

	r.Handle("/metrics", s.metrics.handler()).Methods(http.MethodGet)
	r.Use(s.instrument)
	// Recovery wraps the router so that it also covers the not-found handlers.
	return s.recoverer(r)
}

// names are the model names the routes answer to: the model's, then its
// adapters'.
func (s *Server) names() []string { return append([]string{s.opts.ModelName}, s.opts.Adapters...) }

// served reports whether the routes answer to name, and the adapter it
// runs through ("" for the model itself).
func (s *Server) served(name string) (adapter string, ok bool) {
	if name == s.opts.ModelName {
		return "", true
	}
	return name, name != "" && slices.Contains(s.opts.Adapters, name)
}
