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
	"net/netip"
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
	// DefaultMaxNewTokens is serving's own cap (its --max-new-tokens,
	// default 512): the page never offers more than the API allows.
	DefaultMaxNewTokens = 512
	DefaultKeepAlive    = 15 * time.Second
	DefaultReadTimeout  = 30 * time.Second
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
	// MaxNewTokens is the largest max_new_tokens a request may ask for and
	// the page offers (default DefaultMaxNewTokens). Set it to the serving
	// API's --max-new-tokens when that is not the default.
	MaxNewTokens int
	// RatePerClient is how many API requests (generate and feedback) one
	// client address may make per second on average, RateBurst how many in
	// a row (defaults DefaultRatePerClient, DefaultRateBurst); past them the
	// answer is 429 with Retry-After. A negative RatePerClient turns the
	// rate limit off.
	RatePerClient float64
	RateBurst     int
	// MaxConcurrentPerClient and MaxConcurrent bound the generations in
	// flight for one client address and for all together (defaults
	// DefaultMaxConcurrentPerClient, DefaultMaxConcurrent; negative: no cap).
	MaxConcurrentPerClient int
	MaxConcurrent          int
	// TrustedProxies are the peers whose X-Forwarded-For and identity
	// header are believed; empty (the default) believes none. In the
	// cluster it is the pod's Istio sidecar, 127.0.0.6/32.
	TrustedProxies []netip.Prefix
	// GatewayID, when set, is the SPIFFE id of the ingress gateway: a
	// request from a trusted proxy is believed only if the sidecar's
	// X-Forwarded-Client-Cert names this id as the mTLS peer.
	GatewayID string
	// UserHeader is the header that carries the signed-in user's id
	// (default DefaultUserHeader, which Kubeflow's auth sets). Believed only
	// from the gateway; the id goes to the API as LangSmith trace metadata.
	UserHeader string
	// RequireUser refuses (401) every request but /healthz and /metrics
	// that does not carry a believed identity header.
	RequireUser bool
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
	trust   *trust
	limits  *limits
	metrics *metrics
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
	if opts.RatePerClient == 0 {
		opts.RatePerClient = DefaultRatePerClient
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = DefaultRateBurst
	}
	if opts.MaxConcurrentPerClient == 0 {
		opts.MaxConcurrentPerClient = DefaultMaxConcurrentPerClient
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.UserHeader == "" {
		opts.UserHeader = DefaultUserHeader
	}
	if !validHeaderName(opts.UserHeader) {
		return nil, fmt.Errorf("user header %q: not an HTTP header name", opts.UserHeader)
	}
	if opts.GatewayID != "" && len(opts.TrustedProxies) == 0 {
		return nil, fmt.Errorf("gateway id %q: set the trusted proxies too (the Istio sidecar, 127.0.0.6/32)", opts.GatewayID)
	}
	if opts.RequireUser && len(opts.TrustedProxies) == 0 {
		return nil, errors.New("require user: no trusted proxy is configured, so no identity header could be believed")
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
	lim := newLimits(opts.RatePerClient, opts.RateBurst, max(opts.MaxConcurrentPerClient, 0), max(opts.MaxConcurrent, 0))
	s := &Server{
		opts:    opts,
		trust:   &trust{proxies: opts.TrustedProxies, gatewayID: opts.GatewayID, userHeader: opts.UserHeader},
		limits:  lim,
		metrics: newMetrics(lim),
		api:     &apiClient{base: base, model: opts.ModelName, http: opts.HTTPClient, userAgent: "kfllm-ui"},
		index:   index,
		static:  http.StripPrefix("/static/", http.FileServerFS(sub)),
		log:     opts.Logger,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /static/", s.handleStatic)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("POST /api/generate", s.metrics.count("generate", s.rateLimited(s.handleGenerate)))
	mux.HandleFunc("POST /api/feedback", s.metrics.count("feedback", s.rateLimited(s.handleFeedback)))
	// The API endpoints change state and spend model time: refuse requests
	// that a browser sends on behalf of another site.
	s.handler = securityHeaders(s.identify(http.NewCrossOriginProtection().Handler(mux)))
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

// identify works out who sent each request (see trust.identify) and, when
// RequireUser is set, refuses those without a believed identity.
func (s *Server) identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.trust.identify(r)
		if s.opts.RequireUser && c.user == "" && r.URL.Path != "/healthz" && r.URL.Path != "/metrics" {
			s.metrics.limited.WithLabelValues("unauthenticated").Inc()
			msg := "Sign in through Kubeflow to use this page: it is open only to signed-in users."
			if strings.HasPrefix(r.URL.Path, "/api/") {
				writeError(w, http.StatusUnauthorized, msg)
			} else {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintln(w, msg)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// rateLimited takes a token from the client's bucket before h runs, and
// answers 429 with Retry-After when there is none.
func (s *Server) rateLimited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f := s.limits.allow(clientOf(r.Context()).addr, time.Now()); f != nil {
			s.metrics.limited.WithLabelValues(string(f.reason)).Inc()
			writeRefusal(w, f)
			return
		}
		h(w, r)
	}
}

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
