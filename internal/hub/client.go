package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub's address when neither Options.Endpoint nor
// HF_ENDPOINT says otherwise.
const DefaultEndpoint = "https://huggingface.co"

// Defaults for the retry policy.
const (
	DefaultMaxRetries   = 5
	DefaultMinRetryWait = 1 * time.Second
	DefaultMaxRetryWait = 30 * time.Second
	// maxRetryAfter is the longest Retry-After the client waits for; a
	// server asking for more gets its error returned instead.
	maxRetryAfter = 5 * time.Minute
	maxRedirects  = 10
)

// Options configures a Client. The zero value talks to DefaultEndpoint
// anonymously with http.DefaultTransport.
type Options struct {
	// Endpoint is the Hub's base URL, e.g. "https://huggingface.co" (the
	// binaries fill it from HF_ENDPOINT). Empty means DefaultEndpoint.
	Endpoint string
	// Token is a Hub access token (HF_TOKEN). It is sent as a Bearer token to
	// the Endpoint's host only, never to a host a redirect leads to, and is
	// never written to an error or a log.
	Token string
	// HTTPClient sends the requests; nil means a client on
	// http.DefaultTransport. Its CheckRedirect, if any, is still consulted.
	HTTPClient *http.Client
	// UserAgent is sent with every request; empty means "kfllm".
	UserAgent string
	// MaxRetries is how many times a failed request is retried: 0 means
	// DefaultMaxRetries, a negative value means never.
	MaxRetries int
	// MinRetryWait and MaxRetryWait bound the exponential backoff between
	// retries (a Retry-After header from the server takes precedence).
	// Zero means DefaultMinRetryWait / DefaultMaxRetryWait.
	MinRetryWait, MaxRetryWait time.Duration
	// Logger receives retry notices; nil discards them.
	Logger *slog.Logger
}

// Client talks to the Hugging Face Hub's HTTP API. It is safe for concurrent use.
type Client struct {
	endpoint   *url.URL
	token      string
	hc         *http.Client
	ua         string
	maxRetries int
	minWait    time.Duration
	maxWait    time.Duration
	log        *slog.Logger
}

// New returns a Client for opts. An Endpoint that does not parse as an
// absolute http(s) URL falls back to DefaultEndpoint; use ParseEndpoint
// first to reject it with an error instead.
func New(opts Options) *Client {
	ep, err := ParseEndpoint(opts.Endpoint)
	if err != nil {
		ep, _ = ParseEndpoint(DefaultEndpoint)
	}
	c := &Client{
		endpoint:   ep,
		token:      opts.Token,
		ua:         opts.UserAgent,
		maxRetries: opts.MaxRetries,
		minWait:    opts.MinRetryWait,
		maxWait:    opts.MaxRetryWait,
		log:        opts.Logger,
	}
	if c.ua == "" {
		c.ua = "kfllm"
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.minWait <= 0 {
		c.minWait = DefaultMinRetryWait
	}
	if c.maxWait <= 0 {
		c.maxWait = DefaultMaxRetryWait
	}
	if c.maxWait < c.minWait {
		c.maxWait = c.minWait
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{Transport: defaultTransport()}
	}
	hc := *base // a copy: the caller's client is not modified
	userCheck := base.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if noRedirect, _ := req.Context().Value(noRedirectKey{}).(bool); noRedirect {
			return http.ErrUseLastResponse
		}
		// net/http keeps Authorization on a redirect to a subdomain (the
		// Hub's CDN hosts are subdomains of huggingface.co); the token is
		// for the Hub alone, so drop it whenever the host changes.
		if !c.isHub(req.URL) {
			req.Header.Del("Authorization")
		}
		if userCheck != nil {
			return userCheck(req, via)
		}
		return nil
	}
	c.hc = &hc
	return c
}

// defaultTransport is http.DefaultTransport with a bound on the wait for
// response headers, so that a server that accepts a request and never
// answers fails it (and the retry policy takes over).
func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	return t
}

// ParseEndpoint checks that s (empty means DefaultEndpoint) is an absolute
// http or https URL and returns it without a trailing slash.
func ParseEndpoint(s string) (*url.URL, error) {
	if s == "" {
		s = DefaultEndpoint
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("hub endpoint %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q: want an http(s) URL such as %s", s, DefaultEndpoint)
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// Endpoint returns the Hub's base URL, without a trailing slash.
func (c *Client) Endpoint() string { return c.endpoint.String() }

// HasToken reports whether the client sends a token to the Hub.
func (c *Client) HasToken() bool { return c.token != "" }

// GitPassword returns the token as the password for a git remote on the
// Hub's own host (the Hub's git server takes a token as password); ok is
// false, and no token given, for any other remote or without a token.
func (c *Client) GitPassword(remote string) (token string, ok bool) {
	u, err := url.Parse(remote)
	if err != nil || c.token == "" || u.Host == "" || !strings.EqualFold(u.Host, c.endpoint.Host) {
		return "", false
	}
	return c.token, true
}

// isHub reports whether u points at the Hub's own host (scheme and host:port).
func (c *Client) isHub(u *url.URL) bool {
	return strings.EqualFold(u.Host, c.endpoint.Host) && u.Scheme == c.endpoint.Scheme
}

// Request describes one HTTP exchange for Client.Do.
type Request struct {
	// Method is the HTTP method; empty means GET.
	Method string
	// Path is appended to the Endpoint (it starts with "/", its segments
	// already escaped, and may carry a query). Ignored when URL is set.
	Path string
	// URL is an absolute URL, used instead of Path (for example a CDN or
	// pre-signed upload URL). The token is attached only when its host is
	// the Endpoint's.
	URL string
	// Query is added to the URL's query.
	Query url.Values
	// Header holds extra request headers.
	Header http.Header
	// Body returns a fresh request body for each attempt; nil means none.
	Body func() (io.ReadCloser, error)
	// ContentLength is the body's length when known (0 with a Body: unknown).
	ContentLength int64
	// Idempotent allows retrying after a transport error or a 5xx. GET, HEAD
	// and OPTIONS are idempotent whatever this says. 408 and 429 are retried
	// for every request: the server did not act on it.
	Idempotent bool
	// NoRedirect returns a 3xx response to the caller instead of following it.
	NoRedirect bool
}

type noRedirectKey struct{}

func (r *Request) idempotent() bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return r.Idempotent
}

func (c *Client) resolveURL(r *Request) (*url.URL, error) {
	var u *url.URL
	var err error
	if r.URL != "" {
		u, err = url.Parse(r.URL)
		if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
			err = errors.New("not an absolute http(s) URL")
		}
	} else {
		if !strings.HasPrefix(r.Path, "/") {
			return nil, fmt.Errorf("request path %q does not start with /", r.Path)
		}
		u, err = url.Parse(c.endpoint.String() + r.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("request URL: %w", err)
	}
	if len(r.Query) > 0 {
		q := u.Query()
		for k, vs := range r.Query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// Do sends req, retrying with exponential backoff (or as Retry-After says)
// on 408, 429 and, for idempotent requests, on 5xx and transport errors.
// A response with status >= 400 is returned as an *Error (its body read and
// closed); any other response is returned with its body open for the caller
// to read and close.
func (c *Client) Do(ctx context.Context, req *Request) (*http.Response, error) {
	u, err := c.resolveURL(req)
	if err != nil {
		return nil, err
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if req.NoRedirect {
		ctx = context.WithValue(ctx, noRedirectKey{}, true)
	}
	auth := c.token != "" && c.isHub(u)
	for attempt := 0; ; attempt++ {
		hreq, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, redactURL(u), err)
		}
		for k, vs := range req.Header {
			hreq.Header[k] = append([]string(nil), vs...)
		}
		hreq.Header.Set("User-Agent", c.ua)
		if auth {
			hreq.Header.Set("Authorization", "Bearer "+c.token)
		}
		if req.Body != nil {
			body, err := req.Body()
			if err != nil {
				return nil, fmt.Errorf("%s %s: open body: %w", method, redactURL(u), err)
			}
			hreq.Body = body
			hreq.ContentLength = req.ContentLength
			hreq.GetBody = req.Body
		}
		resp, err := c.hc.Do(hreq)
		retriesLeft := attempt < c.maxRetries
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", method, redactURL(u), ctx.Err())
			}
			err = fmt.Errorf("%s %s: %w", method, redactURL(u), scrubURLError(err))
			if !retriesLeft || !req.idempotent() {
				return nil, err
			}
			wait := c.backoff(attempt)
			c.log.Warn("hub request failed, retrying", "method", method, "url", redactURL(u), "err", err, "attempt", attempt+1, "wait", wait)
			if err := sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, redactURL(u), err)
			}
			continue
		}
		if resp.StatusCode < 400 {
			return resp, nil
		}
		if retriesLeft && retryableStatus(resp.StatusCode, req.idempotent()) {
			wait, ok := c.retryWait(resp, attempt)
			if ok {
				c.log.Warn("hub request refused, retrying", "method", method, "url", redactURL(resp.Request.URL), "status", resp.StatusCode, "attempt", attempt+1, "wait", wait)
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
				resp.Body.Close()
				if err := sleep(ctx, wait); err != nil {
					return nil, fmt.Errorf("%s %s: %w", method, redactURL(u), err)
				}
				continue
			}
		}
		return nil, newError(resp, auth)
	}
}

// DoJSON sends req with "Accept: application/json" and decodes a successful
// response body into out (skipped when out is nil).
func (c *Client) DoJSON(ctx context.Context, req *Request, out any) error {
	r := *req
	r.Header = req.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "application/json")
	}
	resp, err := c.Do(ctx, &r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", resp.Request.Method, redactURL(resp.Request.URL), err)
	}
	return nil
}

func retryableStatus(code int, idempotent bool) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// retryWait is how long to wait before retrying after resp: what its
// Retry-After header says (seconds or an HTTP date), else exponential
// backoff. ok is false when the server asks for longer than maxRetryAfter.
func (c *Client) retryWait(resp *http.Response, attempt int) (time.Duration, bool) {
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		return d, d <= maxRetryAfter
	}
	return c.backoff(attempt), true
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// backoff is min·2^attempt capped at max, with the upper half jittered so
// that parallel clients spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.minWait
	for i := 0; i < attempt && d < c.maxWait; i++ {
		d *= 2
	}
	if d > c.maxWait {
		d = c.maxWait
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// scrubURLError replaces a *url.Error's URL (which may hold a signed query)
// with its redacted form, keeping the wrapped cause for errors.Is.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// EnvOptions returns Options filled from the environment as huggingface_hub
// reads it: HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token
// file `hf auth login` writes ($HF_TOKEN_PATH, else $HF_HOME/token, else
// ~/.cache/huggingface/token); and HF_ENDPOINT.
// getenv is os.Getenv in a binary; it is a parameter so that a main reads
// its environment in one place and tests need not touch the process's.
func EnvOptions(getenv func(string) string) Options {
	tok := strings.TrimSpace(getenv("HF_TOKEN"))
	if tok == "" {
		tok = strings.TrimSpace(getenv("HUGGING_FACE_HUB_TOKEN"))
	}
	if tok == "" {
		if b, err := os.ReadFile(tokenPath(getenv)); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	return Options{Endpoint: strings.TrimSpace(getenv("HF_ENDPOINT")), Token: tok}
}

func tokenPath(getenv func(string) string) string {
	if p := getenv("HF_TOKEN_PATH"); p != "" {
		return p
	}
	if h := getenv("HF_HOME"); h != "" {
		return filepath.Join(h, "token")
	}
	if x := getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "huggingface", "token")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface", "token")
}

// FromEnv is the Client of a binary: New(EnvOptions(getenv)). It owns
// HF_TOKEN and HF_ENDPOINT; library packages take the *Client and never
// see either.
func FromEnv(getenv func(string) string) *Client { return New(EnvOptions(getenv)) }
