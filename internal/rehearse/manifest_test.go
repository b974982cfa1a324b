package rehearse

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const manifests = "../../manifests"

// TestServingPodFromManifest: the serving container is started with what
// manifests/api gives it: the command, the args with $(VAR) expanded from
// the ConfigMap, HF_TOKEN from the secret, the emptyDir volumes (besides
// /tmp) as scratch directories, port 8080 moved to a free loopback port.
func TestServingPodFromManifest(t *testing.T) {
	cm, err := configMap(filepath.Join(manifests, "api", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	isvc, err := inferenceService(filepath.Join(manifests, "api"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	p, err := o.pod(isvc, map[string]map[string]string{"llm-api-config": cm}, map[string]map[string]string{"hf-secret": {"HF_TOKEN": "hf_x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.run.Command, " "); got != "/usr/local/bin/serving" {
		t.Errorf("command %q", got)
	}
	port := p.ports[8080]
	want := []string{"--model-name=" + cm["MODEL_NAME"], "--model-id=" + cm["MODEL_ID"], "--http-port=" + itoa(port)}
	if port == 0 || !slices.Equal(p.run.Args, want) {
		t.Errorf("args %q, want %q", p.run.Args, want)
	}
	for _, e := range []string{"MODEL_NAME=llm-api", "HF_TOKEN=hf_x", "HF_HOME=/var/cache/huggingface"} {
		if !slices.Contains(p.run.Env, e) {
			t.Errorf("env %q lacks %s", p.run.Env, e)
		}
	}
	if !slices.Equal(p.run.Scratch, []string{"/var/cache/huggingface"}) {
		t.Errorf("scratch %q, want the cache volume", p.run.Scratch)
	}
	if p.run.MemoryLimit != 24<<30 {
		t.Errorf("memory limit %d, want the manifest's 24Gi", p.run.MemoryLimit)
	}
	ready, err := p.probeURL(p.c.ReadinessProbe)
	if err != nil || ready != "http://127.0.0.1:"+itoa(port)+"/v1/models/llm-api" {
		t.Errorf("readiness probe %q, %v", ready, err)
	}
	// A pod whose secret key is missing does not start; nor does one whose
	// securityContext asks for a writable root.
	if _, err := o.pod(isvc, map[string]map[string]string{"llm-api-config": cm}, nil); err == nil || !strings.Contains(err.Error(), "secret hf-secret has no key HF_TOKEN") {
		t.Errorf("missing secret: %v", err)
	}
	f := false
	isvc.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
	if _, err := o.pod(isvc, map[string]map[string]string{"llm-api-config": cm}, map[string]map[string]string{"hf-secret": {"HF_TOKEN": "x"}}); err == nil || !strings.Contains(err.Error(), "readOnlyRootFilesystem") {
		t.Errorf("writable root: %v", err)
	}
}

// TestUIPodFromManifest: the UI's env comes from its ConfigMap, its named
// probe port resolves to the moved container port.
func TestUIPodFromManifest(t *testing.T) {
	cm, err := configMap(filepath.Join(manifests, "ui", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm["API_URL"] = "http://127.0.0.1:1"
	dep, err := deployment(filepath.Join(manifests, "ui"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	p, err := o.pod(dep, map[string]map[string]string{"llm-ui-config": cm}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.run.Env, "API_URL=http://127.0.0.1:1") || !slices.Contains(p.run.Env, "RATE_BURST="+cm["RATE_BURST"]) {
		t.Errorf("env %q", p.run.Env)
	}
	port := p.ports[8081]
	if !slices.Equal(p.run.Args, []string{"--port=" + itoa(port)}) {
		t.Errorf("args %q", p.run.Args)
	}
	live, err := p.probeURL(p.c.LivenessProbe)
	if err != nil || live != "http://127.0.0.1:"+itoa(port)+"/healthz" {
		t.Errorf("liveness probe %q, %v", live, err)
	}
	if _, err := o.pod(dep, nil, nil); err == nil || !strings.Contains(err.Error(), "configmap llm-ui-config has no key API_URL") {
		t.Errorf("missing ConfigMap: %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "deployment.yaml"), []byte("kind: Service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := deployment(dir); err == nil || !strings.Contains(err.Error(), "want a Deployment") {
		t.Errorf("a Service read as a Deployment: %v", err)
	}
	if _, err := inferenceService(dir); err == nil {
		t.Error("a missing InferenceService was read")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMemoryBytes(t *testing.T) {
	for q, want := range map[string]int64{"256Mi": 256 << 20, "24Gi": 24 << 30, "1G": 1e9, "1048576": 1 << 20, "1.5Gi": 3 << 29} {
		if got, err := memoryBytes(q); err != nil || got != want {
			t.Errorf("memoryBytes(%q) = %d, %v; want %d", q, got, err, want)
		}
	}
	for _, q := range []string{"", "1Gb", "-1Gi", "Gi"} {
		if _, err := memoryBytes(q); err == nil {
			t.Errorf("memoryBytes(%q) accepted", q)
		}
	}
}
