package main

import (
	"context"
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
