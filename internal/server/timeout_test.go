package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	"github.com/kfllm/kfllm/internal/server"
)

// shortTimeouts makes the connection timeouts short enough to test.
func shortTimeouts(o *server.Options) {
	o.ReadTimeout = 300 * time.Millisecond
	o.IdleTimeout = 300 * time.Millisecond
}

// waitClosed reads from conn until the server closes it; it fails the test
// if the connection is still open after limit.
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %s", limit)
	}
}

// TestTrickledBodyIsCutOff: a client that sends its body a byte at a time
// cannot hold a connection (and a handler) for longer than ReadTimeout.
func TestTrickledBodyIsCutOff(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{opts: shortTimeouts})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/models/llm:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	waitClosed(t, conn, 5*time.Second)
	t.Logf("trickling client cut off after %s", time.Since(start).Round(time.Millisecond))
}

// TestIdleConnectionIsClosed: a keep-alive connection with no request is
// closed after IdleTimeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{opts: shortTimeouts})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	waitClosed(t, conn, 5*time.Second)
}

// TestStreamOutlivesReadTimeout: the timeouts bound reading the request,
// not the answer streaming back (a WriteTimeout would cut it).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: func(string) string { return strings.Repeat("z", 40) }, StepDelay: 20 * time.Millisecond},
		setup{opts: shortTimeouts})
	began := time.Now()
	r := e.post("/v1/models/llm:predict", `{"instances":["q"]}`, "Accept", "text/event-stream")
	events := readSSE(t, strings.NewReader(string(r.body)))
	if took := time.Since(began); took < 600*time.Millisecond {
		t.Fatalf("the answer took %s: too fast to outlive the 300 ms timeouts", took)
	}
	if r.status != 200 || len(events) == 0 || !strings.Contains(events[len(events)-1], `"prediction":"`+strings.Repeat("z", 40)+`"`) {
		t.Errorf("status %d, events %q", r.status, events)
	}
}
