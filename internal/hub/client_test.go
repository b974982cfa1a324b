package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run the client against httptest servers on loopback that
// answer the way the Hub documents (X-Error-Code / X-Error-Message headers,
// Retry-After on 429); the real Hub is not reachable from here.

const secret = "hf_SECRETtoken123"

func fastClient(endpoint string, log *slog.Logger) *Client {
	return New(Options{Endpoint: endpoint, Token: secret, MinRetryWait: time.Millisecond, MaxRetryWait: 5 * time.Millisecond, Logger: log})
}

func TestErrorCodesMapToSentinels(t *testing.T) {
	cases := []struct {
		status  int
		code    string
		message string
		want    error
		text    string
	}{
		{404, "RepoNotFound", "Repository not found", ErrRepoNotFound, "HF_TOKEN"},
		{401, "RepoNotFound", "", ErrRepoNotFound, "can read it"},
		{404, "RevisionNotFound", "Invalid rev id: nope", ErrRevisionNotFound, "Invalid rev id: nope"},
		{404, "EntryNotFound", "Entry not found", ErrEntryNotFound, "does not exist at this revision"},
		{403, "GatedRepo", "Access to model x/y is restricted.", ErrGatedRepo, "request access"},
		{403, "", "Access to this resource is disabled.", ErrDisabledRepo, "disabled"},
		{403, "", "", ErrForbidden, "403 Forbidden"},
		{400, "", "", ErrBadRequest, "400 Bad Request"},
		{409, "", "", ErrConflict, "409 Conflict"},
	}
	for _, tc := range cases {
		t.Run(tc.code+tc.message, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.code != "" {
					w.Header().Set("X-Error-Code", tc.code)
				}
				if tc.message != "" {
					w.Header().Set("X-Error-Message", tc.message)
				}
				w.Header().Set("X-Request-Id", "Root=1-abc")
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			_, err := fastClient(srv.URL, nil).Do(context.Background(), &Request{Path: "/api/models/x/y?token=" + secret})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.want)
			}
			var he *Error
			if !errors.As(err, &he) || he.StatusCode != tc.status || he.RequestID != "Root=1-abc" {
				t.Fatalf("err = %#v", err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("message %q lacks %q", err, tc.text)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("message %q leaks the token", err)
			}
		})
	}
}

func TestErrorMessageFromJSONBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"Invalid repo name"}`)
	}))
	defer srv.Close()
	_, err := fastClient(srv.URL, nil).Do(context.Background(), &Request{Path: "/api/repos/create", Method: "POST"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "Invalid repo name") {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenOnlyToHubHost(t *testing.T) {
	var other atomic.Value
	otherSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Store(r.Header.Get("Authorization"))
	}))
	defer otherSrv.Close()
	var hubAuth atomic.Value
	hubSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hubAuth.Store(r.Header.Get("Authorization"))
	}))
	defer hubSrv.Close()
	c := fastClient(hubSrv.URL, nil)
	for _, r := range []*Request{{Path: "/api/whoami-v2"}, {URL: otherSrv.URL + "/file"}} {
		resp, err := c.Do(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := hubAuth.Load(); got != "Bearer "+secret {
		t.Errorf("hub got Authorization %q", got)
	}
	if got := other.Load(); got != "" {
		t.Errorf("other host got Authorization %q", got)
	}
}

func TestRetryHonoursRetryAfterAndReplaysBody(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var bodies []string
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		times = append(times, time.Now())
		mu.Unlock()
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	defer srv.Close()
	var logs bytes.Buffer
	c := fastClient(srv.URL, slog.New(slog.NewTextHandler(&logs, nil)))
	var out struct{ OK bool }
	err := c.DoJSON(context.Background(), &Request{
		Method: "PUT", Path: "/api/x", Idempotent: true,
		Body: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil },
	}, &out)
	if err != nil || !out.OK {
		t.Fatalf("err = %v, out = %+v", err, out)
	}
	if len(bodies) != 3 || bodies[0] != "payload" || bodies[2] != "payload" {
		t.Fatalf("bodies = %q", bodies)
	}
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Errorf("second attempt came %v after a Retry-After: 1", gap)
	}
	if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "retrying") {
		t.Errorf("logs = %q", logs.String())
	}
}

func TestNoRetryOf5xxForNonIdempotentPost(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	_, err := fastClient(srv.URL, nil).Do(context.Background(), &Request{Method: "POST", Path: "/api/commit"})
	if !errors.Is(err, ErrServer) || calls.Load() != 1 {
		t.Fatalf("err = %v after %d calls", err, calls.Load())
	}
}

func TestRetriesRunOut(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	c := New(Options{Endpoint: srv.URL, MaxRetries: 2, MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
	_, err := c.Do(context.Background(), &Request{Path: "/x"})
	if !errors.Is(err, ErrServer) || calls.Load() != 3 {
		t.Fatalf("err = %v after %d calls, want 3", err, calls.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"7":                             7 * time.Second,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
	} {
		got, ok := parseRetryAfter(v, now)
		if !ok || got != want {
			t.Errorf("parseRetryAfter(%q) = %v, %v", v, got, ok)
		}
	}
	if _, ok := parseRetryAfter("soon", now); ok {
		t.Error("parsed garbage")
	}
}

func TestParseEndpoint(t *testing.T) {
	if u, err := ParseEndpoint("https://hub.example.com/"); err != nil || u.String() != "https://hub.example.com" {
		t.Errorf("got %v, %v", u, err)
	}
	if _, err := ParseEndpoint("hub.example.com"); err == nil {
		t.Error("accepted an endpoint without scheme")
	}
}

func TestEnvOptions(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_fromfile\n"), 0o600)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	o := EnvOptions(env(map[string]string{"HF_TOKEN": " hf_env ", "HF_HOME": home, "HF_ENDPOINT": "http://mirror:8080"}))
	if o.Token != "hf_env" || o.Endpoint != "http://mirror:8080" {
		t.Errorf("env: %+v", o)
	}
	if o := EnvOptions(env(map[string]string{"HUGGING_FACE_HUB_TOKEN": "hf_old", "HF_HOME": home})); o.Token != "hf_old" {
		t.Errorf("legacy variable: %q", o.Token)
	}
	if o := EnvOptions(env(map[string]string{"HF_HOME": home})); o.Token != "hf_fromfile" {
		t.Errorf("token file: %q", o.Token)
	}
	if o := EnvOptions(env(map[string]string{"HF_TOKEN_PATH": filepath.Join(home, "none")})); o.Token != "" {
		t.Errorf("missing token file: %q", o.Token)
	}
}

// The token goes to a git remote on the Hub's own host only.
func TestGitPassword(t *testing.T) {
	c := New(Options{Endpoint: "https://hub.example", Token: "hf_secret"})
	if tok, ok := c.GitPassword("https://hub.example/me/model"); !ok || tok != "hf_secret" {
		t.Errorf("Hub host: %q %v", tok, ok)
	}
	for _, remote := range []string{"https://git.example/me/model", "/srv/model.git", "git@hub.example:me/model.git", "https://hub.example.evil/x"} {
		if tok, ok := c.GitPassword(remote); ok || tok != "" {
			t.Errorf("%s: token given", remote)
		}
	}
	if _, ok := New(Options{Endpoint: "https://hub.example"}).GitPassword("https://hub.example/me/model"); ok {
		t.Error("no token: ok")
	}
}
