package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunRefusesMissingConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{},                          // neither API_URL nor MODEL_NAME
		{"--api-url", "http://api"}, // no model name
		{"--model-name", "m"},       // no API URL
		{"--no-such-flag"},
	} {
		if code := run(context.Background(), args, env(nil)); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}

// TestRunServesFromEnvironment starts the real command on a free port with
// its configuration from the environment, asks for the page and stops it.
func TestRunServesFromEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--port", strconv.Itoa(port)},
			env(map[string]string{"API_URL": "http://127.0.0.1:1", "MODEL_NAME": "from-env"}))
	}()
	var page string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		break
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit code %d after shutdown, want 0", c)
	}
	if !strings.Contains(page, "from-env") {
		t.Errorf("the page does not name the model from MODEL_NAME:\n%.300s", page)
	}
}

// The limits and trust settings come from flags, each defaulting to its
// environment variable; a flag wins.
func TestParseSettings(t *testing.T) {
	o, port, err := parse([]string{"--rate-burst", "3", "--port", "9000"}, env(map[string]string{
		"API_URL": "http://api", "MODEL_NAME": "m", "MAX_NEW_TOKENS": "256", "RATE_LIMIT": "0.5", "RATE_BURST": "7",
		"MAX_CONCURRENT_PER_CLIENT": "1", "MAX_CONCURRENT": "8", "TRUSTED_PROXIES": "127.0.0.6, 10.0.0.0/8",
		"TRUSTED_GATEWAY_ID": "spiffe://cluster.local/ns/istio-system/sa/gw", "USER_HEADER": "x-user", "REQUIRE_USER": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d %d %g %d %d %d %v %s %s %v", port, o.MaxNewTokens, o.RatePerClient, o.RateBurst,
		o.MaxConcurrentPerClient, o.MaxConcurrent, o.TrustedProxies, o.GatewayID, o.UserHeader, o.RequireUser)
	want := "9000 256 0.5 3 1 8 [127.0.0.6/32 10.0.0.0/8] spiffe://cluster.local/ns/istio-system/sa/gw x-user true"
	if got != want {
		t.Errorf("settings\n got %s\nwant %s", got, want)
	}
	o, _, err = parse(nil, env(nil))
	if err != nil || o.MaxNewTokens != 512 || o.TrustedProxies != nil || o.RequireUser || o.UserHeader != "kubeflow-userid" {
		t.Errorf("defaults %+v, %v: want 512 tokens, no trusted proxy, no login, kubeflow-userid", o, err)
	}
	for _, bad := range []map[string]string{
		{"TRUSTED_PROXIES": "not-a-cidr"}, {"RATE_LIMIT": "fast"}, {"RATE_LIMIT": "0"}, {"REQUIRE_USER": "maybe"}, {"MAX_CONCURRENT": "x"},
	} {
		if _, _, err := parse(nil, env(bad)); err == nil {
			t.Errorf("parse accepted %v", bad)
		}
	}
	// Requiring a login with nothing trusted could never let anyone in.
	if code := run(context.Background(), nil, env(map[string]string{"API_URL": "http://api", "MODEL_NAME": "m", "REQUIRE_USER": "true"})); code != 2 {
		t.Errorf("REQUIRE_USER without TRUSTED_PROXIES: exit %d, want 2", code)
	}
}
