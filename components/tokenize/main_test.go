package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary run as the tokenize command, so that the
// tests below check the real exit codes.
func TestMain(m *testing.M) {
	if os.Getenv("TOKENIZE_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TOKENIZE_TEST_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// A Records artifact whose metadata.json is malformed is rejected data
// (exit 4), not a failure worth retrying (exit 1).
func TestMalformedMetadataIsRejectedData(t *testing.T) {
	tokDir := filepath.Join(os.Getenv("KFLLM_TOKENIZERS"), "gpt2")
	if os.Getenv("KFLLM_TOKENIZERS") == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	for name, meta := range map[string]string{
		"truncated JSON": `{"source": "x", "task": "qa"`,
		"wrong type":     `{"task": 5}`,
		"unknown task":   `{"task": "chat"}`,
	} {
		t.Run(name, func(t *testing.T) {
			in := t.TempDir()
			line := `{"context": "Paris is in France.", "question": "Where is Paris?", "answer": "France"}` + "\n"
			if err := os.WriteFile(filepath.Join(in, "data.jsonl"), []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, "metadata.json"), []byte(meta), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "shards")
			msg, code := run(t, "--input-dataset", in, "--tokenizer", tokDir, "--output-dataset", out)
			if code != 4 || !strings.Contains(msg, "metadata") {
				t.Fatalf("exit %d, want 4 with a word on metadata.json: %s", code, msg)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("output left behind: %v", err)
			}
		})
	}
}
