package server

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout         = 2 * time.Minute
	DefaultFeedbackTimeout = 15 * time.Second
	DefaultMaxBodyBytes    = 64 << 10
	DefaultMaxNewTokens    = 1024
	DefaultKeepAlive       = 15 * time.Second
	DefaultReadTimeout     = 30 * time.Second
)

// Options configure a Server. APIURL and ModelName are required.
type Options struct {
	// APIURL is the base URL of the serving API (KServe V1), for example
	// http://llm-api-predictor.kubeflow-user-example-com.svc.cluster.local.
	// It stays on the server: the browser never sees it.
	APIURL string
	// ModelName is the InferenceService's model name: requests go to
	// {APIURL}/v1/models/{ModelName}:predict.
	ModelName string
	// Timeout bounds one generation, from the request to the last token
	// (default DefaultTimeout). Past it the page says the model took too long.
	Timeout time.Duration
	// FeedbackTimeout bounds one feedback call (default DefaultFeedbackTimeout).
	FeedbackTimeout time.Duration
	// MaxBodyBytes bounds a request body from the browser (default
	// DefaultMaxBodyBytes); a larger one is refused with 413.
	MaxBodyBytes int64
	// MaxNewTokens is the largest max_new_tokens a request may ask for
	// (default DefaultMaxNewTokens).
	MaxNewTokens int
	// ReadTimeout bounds reading one request's headers and body (default
	// DefaultReadTimeout). It does not cut a streaming answer short.
	ReadTimeout time.Duration
	// KeepAlive is how often an SSE comment is sent while the model is
	// silent, so that proxies keep the stream open (default DefaultKeepAlive).
	KeepAlive time.Duration
	// HTTPClient calls the API. The default has connect and TLS timeouts and
	// no overall timeout (Timeout applies per request through its context).
	HTTPClient *http.Client
	// Logger receives one line per request to the API; nil discards.
	Logger *slog.Logger
}

// modelNameRE is what KServe accepts as a model name (a DNS-1123-like label,
// dots and underscores allowed); it also keeps the name safe inside a URL path.
var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

//go:embed static
var staticFiles embed.FS

//go:embed templates/index.html
var indexHTML string

// Server is the web UI: the embedded page and the JSON/SSE endpoints it uses.
type Server struct {
	opts    Options
	api     *apiClient
	index   *template.Template
	static  http.Handler
	log     *slog.Logger
	handler http.Handler
}

// New checks opts, fills in defaults and returns a Server.
func New(opts Options) (*Server, error) {
	base, err := url.Parse(opts.APIURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("api url %q: must be an http:// or https:// URL with a host", opts.APIURL)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("api url %q: must not carry a query, a fragment or credentials", base.Redacted())
	}
	if !modelNameRE.MatchString(opts.ModelName) {
		return nil, fmt.Errorf("model name %q: must be letters, digits, '.', '_' or '-'", opts.ModelName)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.FeedbackTimeout <= 0 {
		opts.FeedbackTimeout = DefaultFeedbackTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxNewTokens <= 0 {
		opts.MaxNewTokens = DefaultMaxNewTokens
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	index, err := template.New("index").Parse(indexHTML)
	if err != nil {
		return nil, fmt.Errorf("parse page template: %w", err)
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	s := &Server{
		opts:   opts,
		api:    &apiClient{base: base, model: opts.ModelName, http: opts.HTTPClient, userAgent: "kfllm-ui"},
		index:  index,
		static: http.StripPrefix("/static/", http.FileServerFS(sub)),
		log:    opts.Logger,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /static/", s.handleStatic)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("POST /api/generate", s.handleGenerate)
	mux.HandleFunc("POST /api/feedback", s.handleFeedback)
	// The API endpoints change state and spend model time: refuse requests
	// that a browser sends on behalf of another site.
	s.handler = securityHeaders(http.NewCrossOriginProtection().Handler(mux))
	return s, nil
}

// Handler returns the server's HTTP handler, security headers included.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully,
// giving streams in flight a few seconds to finish. It returns nil after a
// shutdown that ctx asked for.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(10*time.Second, s.opts.ReadTimeout),
		ReadTimeout:       s.opts.ReadTimeout,
		// No WriteTimeout: an answer streams for up to Options.Timeout, which
		// the generate handler enforces itself.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve ui: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve ui: %w", err)
	}
	return nil
}

// contentSecurityPolicy allows only this server's own scripts, styles and
// images (no inline script, no eval), connections back to this server, and
// no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	data := struct {
		ModelName    string
		MaxNewTokens int
	}{s.opts.ModelName, s.opts.MaxNewTokens}
	if err := s.index.Execute(w, data); err != nil {
		s.log.Warn("render page", "err", err)
	}
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	// Embedded files carry no modification time; revalidate each load so a
	// new image's assets replace the old ones.
	if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	s.static.ServeHTTP(w, r)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
