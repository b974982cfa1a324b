package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/langsmith"
)

// clientFrom returns an HTTP client whose connections leave from the
// loopback address src (all of 127/8 is loopback on Linux), so that one test
// can be two different client addresses.
func clientFrom(t testing.TB, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}
	// Connections dialed but never used would hold the server's graceful
	// shutdown for 5 s.
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// canDialFrom reports whether this machine routes 127.0.0.2 (Linux does;
// macOS needs an alias), so that the two-address test can say why it skips.
func canDialFrom(src string) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func post(t *testing.T, c *http.Client, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// TestLoadFromOneAddressIsLimited is issue #20's "done when": a load test
// from one address is limited while a second address still gets answers.
// The real UI server listens on loopback in front of a stand-in API (also on
// loopback); the flood comes from 127.0.0.1, the second person from 127.0.0.2.
func TestLoadFromOneAddressIsLimited(t *testing.T) {
	if !canDialFrom("127.0.0.2") {
		t.Skip("127.0.0.2 is not routable here (Linux routes all of 127/8); TestForwardedForFromTrustedProxy covers the gateway path")
	}
	api := newStandinAPI(t, testModel, "An", " answer", ".")
	ui := startUI(t, api, func(o *Options) {
		o.RatePerClient, o.RateBurst = 2, 5
		o.MaxConcurrentPerClient, o.MaxConcurrent = 4, 32
	})
	flood, other := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2")
	const n = 60
	var mu sync.Mutex
	codes := map[int]int{}
	var retryAfter []string
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, _ := post(t, flood, ui+"/api/generate", `{"context":"c","question":"q"}`, nil)
			mu.Lock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
			}
			mu.Unlock()
		})
	}
	// The second address asks while the flood goes on.
	for i := range 3 {
		resp, raw := post(t, other, ui+"/api/generate", `{"context":"c","question":"q"}`, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"done":true`) {
			t.Errorf("second address, request %d: status %d, body %.200s", i, resp.StatusCode, raw)
		}
	}
	wg.Wait()
	t.Logf("flood from 127.0.0.1: %v", codes)
	if codes[http.StatusTooManyRequests] < n/2 || codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != n {
		t.Errorf("flood from one address: %v; want most of %d refused with 429, some answered", codes, n)
	}
	for _, ra := range retryAfter {
		if s, err := strconv.Atoi(ra); err != nil || s < 1 {
			t.Errorf("429 with Retry-After %q, want whole seconds >= 1", ra)
			break
		}
	}
	m := metricsText(t, ui)
	if !strings.Contains(m, `kfllm_ui_limited_total{reason="rate"} `) || strings.Contains(m, `kfllm_ui_limited_total{reason="rate"} 0`) {
		t.Errorf("metrics do not count the rate refusals (%v):\n%s", codes, m)
	}
	if !strings.Contains(m, `kfllm_ui_requests_total{code="429",route="generate"} `+strconv.Itoa(codes[http.StatusTooManyRequests])) {
		t.Errorf("metrics do not count the 429s (%v):\n%s", codes, m)
	}
}

func metricsText(t *testing.T, ui string) string {
	t.Helper()
	resp, err := http.Get(ui + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Through the gateway every request reaches the UI from its sidecar; the
// client is the address the gateway put in X-Forwarded-For.
func TestForwardedForFromTrustedProxy(t *testing.T) {
	api := newStandinAPI(t, testModel, "ok")
	ui := startUI(t, api, func(o *Options) {
		o.RatePerClient, o.RateBurst = 0.001, 2
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	c := http.DefaultClient
	ask := func(xff string) int {
		resp, _ := post(t, c, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":1}`, map[string]string{"X-Forwarded-For": xff})
		return resp.StatusCode
	}
	// 203.0.113.7 spends its burst of 2, then is limited.
	for i, want := range []int{200, 200, 429} {
		if got := ask("203.0.113.7"); got != want {
			t.Errorf("first client, request %d: %d, want %d", i, got, want)
		}
	}
	// Another address behind the gateway still gets through; a client that
	// writes its own X-Forwarded-For is known by the address the gateway
	// appended (the rightmost), not by what it wrote.
	if got := ask("198.51.100.9"); got != 200 {
		t.Errorf("second client: %d, want 200", got)
	}
	if got := ask("198.51.100.1, 203.0.113.7"); got != 429 {
		t.Errorf("first client with a forged X-Forwarded-For: %d, want 429", got)
	}
}

// Without trusted proxies (the default) X-Forwarded-For is not believed:
// changing it does not escape the limit.
func TestForwardedForIgnoredByDefault(t *testing.T) {
	api := newStandinAPI(t, testModel, "ok")
	ui := startUI(t, api, func(o *Options) { o.RatePerClient, o.RateBurst = 0.001, 2 })
	got := []int{}
	for i := range 4 {
		resp, _ := post(t, http.DefaultClient, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":1}`,
			map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i), "kubeflow-userid": "u" + strconv.Itoa(i)})
		got = append(got, resp.StatusCode)
	}
	if got[2] != 429 || got[3] != 429 {
		t.Errorf("statuses %v: a client escaped its limit by writing X-Forwarded-For", got)
	}
	resp, _ := http.Get(ui + "/")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the page is limited too: %d", resp.StatusCode)
	}
}

// The caps on generations in flight: per client and in all.
func TestConcurrencyCaps(t *testing.T) {
	api := newStandinAPI(t, testModel, "slow", " answer")
	api.set(func(b *behaviour) { b.tokenDelay = time.Hour })
	ui := startUI(t, api, func(o *Options) {
		o.RatePerClient = -1
		o.MaxConcurrentPerClient, o.MaxConcurrent = 2, 3
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := func(xff string) {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ui+"/api/generate", strings.NewReader(`{"question":"q"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", xff)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	waitInFlight := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, _, calls := api.lastPredict(); calls >= n {
				return
			}
		}
		t.Fatalf("the API never saw %d requests", n)
	}
	start("203.0.113.1")
	start("203.0.113.1")
	waitInFlight(2)
	resp, raw := post(t, http.DefaultClient, ui+"/api/generate", `{"question":"q"}`, map[string]string{"X-Forwarded-For": "203.0.113.1"})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(errorBody(t, resp, raw), "You already have answers being written") {
		t.Errorf("third generation from one client: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	start("203.0.113.2")
	waitInFlight(3)
	resp, raw = post(t, http.DefaultClient, ui+"/api/generate", `{"question":"q"}`, map[string]string{"X-Forwarded-For": "203.0.113.3"})
	if resp.StatusCode != 429 || !strings.Contains(errorBody(t, resp, raw), "busy answering other people's questions") {
		t.Errorf("fourth generation in all: %d %s", resp.StatusCode, raw)
	}
	m := metricsText(t, ui)
	for _, want := range []string{`kfllm_ui_limited_total{reason="client_concurrency"} 1`, `kfllm_ui_limited_total{reason="concurrency"} 1`, `kfllm_ui_generations_in_flight 3`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	cancel()
	wg.Wait()
	// Released: the first client may ask again.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(metricsText(t, ui), "kfllm_ui_generations_in_flight 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("generations in flight did not return to 0 after the browsers left")
		}
	}
}

const gatewayID = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

// The identity header, believed only from the gateway, goes to the API as
// LangSmith baggage; with RequireUser a request without it is refused.
func TestUserIdentity(t *testing.T) {
	api := newStandinAPI(t, testModel, "ok")
	ui := startUI(t, api, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.GatewayID = gatewayID
		o.RequireUser = true
	})
	fromGateway := "By=spiffe://cluster.local/ns/kubeflow-user-example-com/sa/llm-ui;Hash=abc;Subject=\"\";URI=" + gatewayID
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"no identity", nil, 401},
		{"identity without the gateway's certificate", map[string]string{"kubeflow-userid": "mallory@example.com"}, 401},
		{"identity from another workload", map[string]string{"kubeflow-userid": "mallory@example.com",
			"X-Forwarded-Client-Cert": "By=x;URI=spiffe://cluster.local/ns/other/sa/default"}, 401},
		{"gateway element not last", map[string]string{"kubeflow-userid": "mallory@example.com",
			"X-Forwarded-Client-Cert": fromGateway + ",By=x;URI=spiffe://cluster.local/ns/other/sa/default"}, 401},
		{"through the gateway", map[string]string{"kubeflow-userid": "alice@example.com", "X-Forwarded-Client-Cert": fromGateway}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := post(t, http.DefaultClient, ui+"/api/generate", `{"question":"q"}`, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
		})
	}
	_, h, _ := api.lastPredict()
	md := langsmith.MetadataFromBaggage(h.Get("baggage"))
	if md["user_id"] != "alice@example.com" {
		t.Errorf("the API got baggage %q, want user_id alice@example.com", h.Get("baggage"))
	}
	if h.Get("kubeflow-userid") != "" {
		t.Error("the identity header itself was forwarded to the API")
	}
	// The page is behind the login too; the probe is not.
	for path, want := range map[string]int{"/": 401, "/healthz": 200} {
		resp, err := http.Get(ui + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestIdentifyTable(t *testing.T) {
	tr := &trust{proxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.6/32")}, gatewayID: gatewayID, userHeader: "kubeflow-userid"}
	xfcc := "By=spiffe://a;URI=" + gatewayID
	cases := []struct {
		name, remote, xff, xfcc, user string
		wantAddr, wantUser            string
		wantGateway                   bool
	}{
		{name: "direct client", remote: "198.51.100.4:5555", xff: "1.2.3.4", user: "eve", wantAddr: "198.51.100.4"},
		{name: "sidecar, plain text (LoadBalancer)", remote: "127.0.0.6:4000", xff: "1.2.3.4", user: "eve", wantAddr: "127.0.0.6"},
		{name: "gateway", remote: "127.0.0.6:4000", xff: "9.9.9.9, 203.0.113.5", xfcc: xfcc, user: "alice", wantAddr: "203.0.113.5", wantUser: "alice", wantGateway: true},
		{name: "gateway, garbled XFF", remote: "127.0.0.6:4000", xff: "nonsense", xfcc: xfcc, wantAddr: "127.0.0.6", wantGateway: true},
		{name: "gateway, quoted XFCC", remote: "127.0.0.6:4000", xff: "203.0.113.5", xfcc: `By=spiffe://a;Subject="CN=x,O=y;z";URI=` + gatewayID, wantAddr: "203.0.113.5", wantGateway: true},
		{name: "gateway, control char in user", remote: "127.0.0.6:4000", xff: "203.0.113.5", xfcc: xfcc, user: "a\x01b", wantAddr: "203.0.113.5", wantGateway: true},
		{name: "ipv6 cut to /64", remote: "[2001:db8:1:2:3:4:5:6]:80", wantAddr: "2001:db8:1:2::"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for k, v := range map[string]string{"X-Forwarded-For": tc.xff, "X-Forwarded-Client-Cert": tc.xfcc, "kubeflow-userid": tc.user} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			c := tr.identify(r)
			if c.addr.String() != tc.wantAddr || c.user != tc.wantUser || c.viaGateway != tc.wantGateway {
				t.Errorf("identify = %+v, want addr %s user %q gateway %v", c, tc.wantAddr, tc.wantUser, tc.wantGateway)
			}
		})
	}
}

// The page never offers more new tokens than the API allows (serving's
// --max-new-tokens, 512 by default), and the server refuses more.
func TestMaxNewTokensFollowsTheAPI(t *testing.T) {
	api := newStandinAPI(t, testModel, "ok")
	ui := startUI(t, api, nil)
	resp, err := http.Get(ui + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `max="512"`) {
		t.Errorf("the page does not cap max new tokens at 512")
	}
	resp2, raw := postJSON(t, ui+"/api/generate", `{"question":"q","max_new_tokens":1024}`)
	if resp2.StatusCode != 400 || errorBody(t, resp2, raw) != "Max new tokens must be between 1 and 512." {
		t.Errorf("1024 tokens: %d %s", resp2.StatusCode, raw)
	}
	if _, _, n := api.lastPredict(); n != 0 {
		t.Errorf("the API was asked for 1024 tokens")
	}
}
