package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The make targets create-secret and run-pipeline are scripts; these tests
// run them with stand-ins for kubectl and the pipeline binary on PATH.

func script(t *testing.T, name string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join("..", "scripts", name)}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestCreateSecretScript(t *testing.T) {
	dir := t.TempDir()
	// kubectl stand-in: "create ... --from-file=HF_TOKEN=/dev/stdin" renders
	// what it read; "apply -f -" records what it was given.
	kubectl := filepath.Join(dir, "kubectl")
	os.WriteFile(kubectl, []byte(`#!/bin/sh
echo "$*" >> "`+dir+`/argv"
if [ "$1" = create ]; then printf 'kind: Secret\ndata: %s\n' "$(cat | base64)"; else cat > "`+dir+`/applied"; fi
`), 0o755)
	base := []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "KUBECTL=" + kubectl}

	out, code := script(t, "create-secret.sh", base)
	if code != 2 || !strings.Contains(out, "HF_TOKEN is not set") {
		t.Errorf("without HF_TOKEN: exit %d, %q", code, out)
	}
	out, code = script(t, "create-secret.sh", append(base, "HF_TOKEN=hf_topsecret", "NAMESPACE=team-a"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	applied, _ := os.ReadFile(filepath.Join(dir, "applied"))
	if strings.Contains(string(argv), "hf_topsecret") || strings.Contains(out, "hf_topsecret") {
		t.Error("the token is on a command line or in the output")
	}
	if !strings.Contains(string(argv), "create secret generic hf-secret --namespace team-a --from-file=HF_TOKEN=/dev/stdin --dry-run=client -o yaml") ||
		!strings.Contains(string(argv), "apply -f -") {
		t.Errorf("kubectl calls:\n%s", argv)
	}
	if !strings.Contains(string(applied), "aGZfdG9wc2VjcmV0") { // base64("hf_topsecret")
		t.Errorf("applied manifest lacks the token from stdin:\n%s", applied)
	}
}

func TestRunPipelineScript(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "pipeline")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >> \""+dir+"/calls\"\n[ \"$1\" = compile ] && touch \"$3\"\nexit 0\n"), 0o755)
	yaml := filepath.Join(dir, "out", "p.yaml")
	base := []string{"PATH=" + os.Getenv("PATH"), "PIPELINE_BIN=" + fake, "PIPELINE_YAML=" + yaml}

	if out, code := script(t, "run-pipeline.sh", append(base, "KFP_HOST=http://kfp")); code != 2 || !strings.Contains(out, "HF_REPO is not set") {
		t.Errorf("without HF_REPO: exit %d, %q", code, out)
	}
	if out, code := script(t, "run-pipeline.sh", append(base, "HF_REPO=me/m")); code != 2 || !strings.Contains(out, "KFP_HOST is not set") {
		t.Errorf("without KFP_HOST: exit %d, %q", code, out)
	}
	out, code := script(t, "run-pipeline.sh", append(base, "HF_REPO=me/m", "KF_PIPELINES_ENDPOINT=http://kfp:8888", "NAMESPACE=team-a"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	want := "compile -o " + yaml + "\nrun --host http://kfp:8888 --namespace team-a -f " + yaml + " --param hf_repo=me/m\n"
	if string(calls) != want {
		t.Errorf("calls:\n%s\nwant:\n%s", calls, want)
	}
	// finetune's GPU pool for one run: each a pipeline parameter, the JSON
	// passed whole as one argument.
	os.Remove(filepath.Join(dir, "calls"))
	ns := `{"cloud.google.com/gke-accelerator": "nvidia-l4"}`
	tol := `[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`
	os.WriteFile(fake, []byte("#!/bin/sh\nfor a; do echo \"$a\"; done >> \""+dir+"/calls\"\n"), 0o755)
	out, code = script(t, "run-pipeline.sh", append(base, "HF_REPO=me/m", "KFP_HOST=http://kfp", "ACCELERATOR=nvidia.com/gpu",
		"NODE_SELECTOR="+ns, "TOLERATIONS="+tol), "--wait")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	calls, _ = os.ReadFile(filepath.Join(dir, "calls"))
	want = strings.Join([]string{"run", "--host", "http://kfp", "--namespace", "kubeflow-user-example-com", "-f", yaml,
		"--param", "hf_repo=me/m", "--param", "accelerator=nvidia.com/gpu", "--param", "node_selector=" + ns,
		"--param", "tolerations=" + tol, "--wait"}, "\n") + "\n"
	if string(calls) != want {
		t.Errorf("args:\n%s\nwant:\n%s", calls, want)
	}
}

// TestDeployServesTheRunsCommit: make api-deploy MODEL_ID=OWNER/NAME@REV
// (REV the commit_sha a run outputs) puts exactly that revision in the
// API's ConfigMap, which serving reads as --model-id OWNER/NAME@REV.
func TestDeployServesTheRunsCommit(t *testing.T) {
	dir := t.TempDir()
	base := []string{"PATH=" + os.Getenv("PATH"), "KFLLM_DEPLOY_DIR=" + dir}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	out, code := script(t, "deploy.sh", append(base, "MODEL_ID=alice/squad@"+sha), "render", "api")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	k, err := os.ReadFile(filepath.Join(dir, "api", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(k), "path: /data/MODEL_ID\n        value: \"alice/squad@"+sha+"\"") {
		t.Errorf("the overlay does not pin the revision:\n%s", k)
	}
	for _, bad := range []string{"alice/squad@", "alice/squad@main branch", "alice/squad@@x"} {
		if out, code := script(t, "deploy.sh", append(base, "MODEL_ID="+bad), "render", "api"); code != 2 || !strings.Contains(out, "OWNER/NAME[@REV]") {
			t.Errorf("MODEL_ID=%s: exit %d, %s", bad, code, out)
		}
	}
}
