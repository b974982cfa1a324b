package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary run as the fetch command, so that the
// tests below check the real flags, output and exit codes.
func TestMain(m *testing.M) {
	if os.Getenv("FETCH_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append(env, "FETCH_TEST_RUN_MAIN=1")...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	fixture, _ := filepath.Abs("../../internal/records/testdata/squad.jsonl")
	out := filepath.Join(dir, "ok")
	if msg, code := run(t, nil, "--source", fixture, "--output-dataset", out, "--max-bad-rows", "3"); code != 0 || !strings.Contains(msg, "4 records") {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(out, "metadata.json")); err != nil {
		t.Fatal(err)
	}
	if msg, code := run(t, nil, "--source", fixture, "--output-dataset", filepath.Join(dir, "bad")); code != 4 || !strings.Contains(msg, "too many bad rows") {
		t.Errorf("bad rows: exit %d: %s", code, msg)
	}
	if _, code := run(t, nil, "--source", filepath.Join(dir, "nope.csv"), "--output-dataset", filepath.Join(dir, "x")); code != 3 {
		t.Errorf("missing file: exit %d", code)
	}
	if _, code := run(t, nil, "--source", fixture); code != 2 {
		t.Errorf("no output: exit %d", code)
	}
	if _, code := run(t, nil, "--source", fixture, "--output-dataset", "o", "--task", "chat"); code != 2 {
		t.Errorf("bad task: exit %d", code)
	}
}

// A Hub that answers as the real one does for a gated dataset (see the
// hub package's tests for the full fake Hub).
func TestGatedDatasetMessage(t *testing.T) {
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("X-Error-Code", "GatedRepo")
		w.Header().Set("X-Error-Message", "Access to dataset o/d is restricted.")
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	msg, code := run(t, []string{"HF_ENDPOINT=" + srv.URL, "HF_TOKEN=hf_secretvalue"},
		"--source", "hf://datasets/o/d", "--output-dataset", filepath.Join(t.TempDir(), "out"))
	if code != 3 || !strings.Contains(msg, "gated") || !strings.Contains(msg, "request access") {
		t.Errorf("exit %d: %s", code, msg)
	}
	if strings.Contains(msg, "hf_secretvalue") {
		t.Errorf("token printed: %s", msg)
	}
	if auth.Load() != "Bearer hf_secretvalue" {
		t.Errorf("Hub got Authorization %q", auth)
	}
}

// SIGTERM (what Kubernetes sends to stop a pod) ends a fetch that reads a
// source without end, promptly and without output; with --max-bytes such
// a source is refused as rejected data (exit 4).
func TestEndlessSource(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "--source", "/dev/zero", "--format", "jsonl", "--output-dataset", filepath.Join(dir, "out"))
	cmd.Env = append(os.Environ(), "FETCH_TEST_RUN_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("exit 0 after SIGTERM")
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("still running 30 s after SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatalf("output left: %v", err)
	}
	msg, code := run(t, nil, "--source", "/dev/zero", "--format", "jsonl", "--max-bytes", "1000000", "--output-dataset", filepath.Join(dir, "out"))
	if code != 4 || !strings.Contains(msg, "--max-bytes") {
		t.Fatalf("--max-bytes: exit %d: %s", code, msg)
	}
}

func TestMaxLineBytesFlag(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "long.jsonl")
	line := `{"context":"` + strings.Repeat("x", 5000) + `","question":"q","answer":"a"}` + "\n"
	os.WriteFile(src, []byte(line), 0o644)
	msg, code := run(t, nil, "--source", src, "--max-line-bytes", "4096", "--output-dataset", filepath.Join(dir, "out"))
	if code != 4 || !strings.Contains(msg, "--max-line-bytes=4096") {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if msg, code := run(t, nil, "--source", src, "--max-line-bytes", "8192", "--output-dataset", filepath.Join(dir, "out")); code != 0 {
		t.Fatalf("within the limit: exit %d: %s", code, msg)
	}
	if _, code := run(t, nil, "--source", src, "--max-line-bytes", "0", "--output-dataset", filepath.Join(dir, "o2")); code != 2 {
		t.Fatalf("--max-line-bytes 0: exit %d, want 2", code)
	}
}
