package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompileWritesTheGolden(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.yaml")
	var stderr bytes.Buffer
	if err := dispatch(context.Background(), []string{"compile", "-o", out}, env{}, &stderr, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile("../internal/kfp/testdata/kfllm-finetune.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("pipeline compile output differs from internal/kfp/testdata/kfllm-finetune.yaml")
	}
	// GPU scheduling from flags: the variant the KFP SDK golden --gpu compiles.
	if err := dispatch(context.Background(), []string{"compile", "-o", out, "--node-selector", "cloud.google.com/gke-accelerator=nvidia-l4",
		"--toleration", "nvidia.com/gpu=present:NoSchedule", "--toleration", "cloud.google.com/gke-preemptible:NoExecute:300"}, env{}, &stderr, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	got, _ = os.ReadFile(out)
	if want, _ := os.ReadFile("../internal/kfp/testdata/kfllm-finetune-gpu.yaml"); !bytes.Equal(got, want) {
		t.Error("pipeline compile with GPU flags differs from internal/kfp/testdata/kfllm-finetune-gpu.yaml")
	}
	for _, bad := range []string{"x=y", "x:NoWhere", "x:NoExecute:-1"} {
		if err := dispatch(context.Background(), []string{"compile", "-o", out, "--toleration", bad}, env{}, &stderr, &stderr); err == nil {
			t.Errorf("--toleration %s accepted", bad)
		}
	}
	// Image registry and tag come from flags or the environment.
	if err := dispatch(context.Background(), []string{"compile", "-o", out, "--image-tag", "v9"}, env{ImageRegistry: "reg.example/x"}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(out)
	if !strings.Contains(string(got), "image: reg.example/x/kfllm-finetune:v9") {
		t.Errorf("images not from the flags/env:\n%s", got)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	for _, args := range [][]string{nil, {"bogus"}, {"compile"}, {"local"}, {"local", "-f", "x", "extra"}, {"run", "--param", "novalue"}} {
		err := dispatch(context.Background(), args, env{}, &stderr, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%v)", args, code, err)
		}
	}
}

// TestLocalExitCode runs the compiled pipeline with stand-in binaries whose
// finetune fails with exit code 7: pipeline local exits 7.
func TestLocalExitCode(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	ok := "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in --output-*) mkdir -p \"$2\";; esac; shift; done\n"
	for _, n := range []string{"fetch", "tokenize", "upload"} {
		os.WriteFile(filepath.Join(bin, n), []byte(ok), 0o755)
	}
	os.WriteFile(filepath.Join(bin, "finetune"), []byte("#!/bin/sh\necho CUDA error >&2\nexit 7\n"), 0o755)
	secret := filepath.Join(dir, "hf.env")
	os.WriteFile(secret, []byte("HF_TOKEN=\n"), 0o600)
	var out, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"local", "-f", "../internal/kfp/testdata/kfllm-finetune.yaml",
		"--bin-dir", bin, "--work-dir", filepath.Join(dir, "runs"), "--secret", "hf-secret=" + secret, "--max-backoff", "1ms"}, env{}, &out, &stderr)
	if code := exitCode(err, &stderr); code != 7 {
		t.Fatalf("exit %d, want 7; err %v\n%s", code, err, out.String())
	}
	if !strings.Contains(stderr.String(), "CUDA error") {
		t.Errorf("the log tail is not in the error:\n%s", stderr.String())
	}
}

// TestNoHeavyImports keeps libtorch (gotch, cgo) out of the pipeline command.
func TestNoHeavyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "sugarme/gotch") || strings.Contains(dep, "sugarme/tokenizer") {
			t.Errorf("pipeline depends on %s", dep)
		}
	}
}

// TestRunCredentials: the token comes from --token, KF_PIPELINES_TOKEN or
// the token file, in that order; the cookie from KF_PIPELINES_COOKIE; no
// kubeflow-userid is ever sent. The server refuses, which exits 1.
func TestRunCredentials(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("from-file\n"), 0o600)
	for _, tc := range []struct {
		args []string
		e    env
		want string
	}{
		{[]string{"--token", "from-flag"}, env{Token: "from-env", TokenPath: tokenFile}, "Bearer from-flag"},
		{nil, env{Token: "from-env", TokenPath: tokenFile}, "Bearer from-env"},
		{nil, env{TokenPath: tokenFile}, "Bearer from-file"},
	} {
		var got, cookie, userid string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, cookie, userid = r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("kubeflow-userid")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":16,"message":"unauthenticated"}`)
		}))
		tc.e.Host, tc.e.Cookie = srv.URL, "oauth2_proxy_kubeflow=c1"
		var out, stderr bytes.Buffer
		err := dispatch(context.Background(), append([]string{"run"}, tc.args...), tc.e, &out, &stderr)
		srv.Close()
		if code := exitCode(err, &stderr); code != 1 {
			t.Errorf("%v: exit %d, want 1", tc.args, code)
		}
		if got != tc.want || cookie != "oauth2_proxy_kubeflow=c1" || userid != "" {
			t.Errorf("%v: Authorization %q Cookie %q kubeflow-userid %q; want %q", tc.args, got, cookie, userid, tc.want)
		}
		if strings.Contains(stderr.String(), "from-") {
			t.Errorf("a token is in the error output: %s", stderr.String())
		}
	}
}
