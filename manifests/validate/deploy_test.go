package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runScript runs a script of the repo with only the given environment (and
// a PATH with bash and coreutils, but no kubectl or docker).
func runScript(t *testing.T, env []string, script string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	cmd := exec.Command("bash", append([]string{repoPath("scripts", script)}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestDeployOverlay: the overlay scripts/deploy.sh writes for another
// namespace, registry, tag and model renders into manifests that meet the
// same contracts there: the namespace everywhere, the UI's principal in that
// namespace, the images and MODEL_ID given.
func TestDeployOverlay(t *testing.T) {
	dir := t.TempDir()
	env := []string{"KFLLM_DEPLOY_DIR=" + dir, "NAMESPACE=team-a", "TRUST_DOMAIN=example.org", "IMAGE_REGISTRY=reg.example.com/ml", "IMAGE_TAG=v1.2.3"}
	var dirs []string
	for _, base := range []string{"api", "ui"} {
		out, stderr, code := runScript(t, append(env, "HF_REPO=alice/squad-llama"), "deploy.sh", "render", base)
		if code != 0 {
			t.Fatalf("render %s: exit %d: %s", base, code, stderr)
		}
		dirs = append(dirs, strings.TrimSpace(out))
	}
	b, err := RenderBundle(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	e := expect(t)
	e.Namespace, e.TrustDomain, e.Registry, e.Tag, e.ModelID = "team-a", "example.org", "reg.example.com/ml", "v1.2.3", "alice/squad-llama"
	for _, err := range CheckBundle(b, e) {
		t.Error(err)
	}
	// kubectl's own kustomize (what `kubectl apply -k` runs) renders the
	// overlays to the same contracts.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		kb := NewBundle()
		for _, d := range dirs {
			out, err := exec.Command(kubectl, "kustomize", d).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", d, err)
			}
			if err := kb.Add(out, "kubectl kustomize "+d); err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range CheckBundle(kb, e) {
			t.Errorf("kubectl kustomize: %v", err)
		}
	} else {
		t.Log("kubectl not found: overlays rendered with the kustomize library only")
	}
	// Rendering twice writes the same overlay (apply is idempotent).
	first, _ := os.ReadFile(filepath.Join(dir, "api", "kustomization.yaml"))
	runScript(t, append(env, "MODEL_ID=alice/squad-llama"), "deploy.sh", "render", "api")
	second, _ := os.ReadFile(filepath.Join(dir, "api", "kustomization.yaml"))
	if !bytes.Equal(first, second) {
		t.Errorf("second render differs:\n%s\n---\n%s", first, second)
	}
}

// A tool that is not there (this machine may have a kubectl with no
// cluster behind it).
const noKubectl = "KUBECTL=/nonexistent/kubectl"

// TestScriptsSayWhatIsMissing: each target checks its environment before
// touching anything and names what is missing.
func TestScriptsSayWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		script string
		args   []string
		env    []string
		code   int
		want   string
	}{
		{"deploy.sh", []string{"api-deploy"}, nil, 2, "MODEL_ID (or HF_REPO) is not set"},
		{"deploy.sh", []string{"api-deploy"}, []string{"MODEL_ID=a/b", noKubectl}, 127, "kubectl not found"},
		{"deploy.sh", []string{"ui-deploy"}, []string{noKubectl}, 127, "kubectl not found"},
		{"deploy.sh", []string{"undeploy"}, []string{noKubectl}, 127, "kubectl not found"},
		{"deploy.sh", []string{"api-deploy"}, []string{"MODEL_ID=a/b", "NAMESPACE=Bad_NS"}, 2, "not a Kubernetes namespace"},
		{"deploy.sh", []string{"render", "api"}, []string{"MODEL_ID=not a repo"}, 2, "not a Hub repo id"},
		{"deploy.sh", []string{"render", "ui"}, []string{"IMAGE_TAG=bad tag"}, 2, "not a valid image tag"},
		{"deploy.sh", []string{"render", "ui"}, []string{"TRUST_DOMAIN=Cluster Local"}, 2, "is not a trust domain"},
		{"images.sh", []string{"build"}, []string{"IMAGES=fetch", "IMAGE_TAG=no good"}, 2, "not a valid tag"},
		{"images.sh", []string{"build"}, []string{"IMAGES=fetch", "IMAGE_FLAVOR=rocm"}, 2, "want cuda or cpu"},
		{"images.sh", []string{"push"}, []string{"IMAGES="}, 2, "IMAGES is empty"},
		{"images.sh", []string{"build"}, []string{"IMAGES=fetch nosuch"}, 2, "no main package for image nosuch"},
		{"create-langsmith-secret.sh", nil, nil, 0, "LANGCHAIN_API_KEY (or LANGSMITH_API_KEY) is not set"},
		{"create-langsmith-secret.sh", nil, []string{"LANGCHAIN_API_KEY=k", noKubectl}, 127, "kubectl not found"},
		{"create-langsmith-secret.sh", nil, []string{"LANGCHAIN_API_KEY=k", "LANGCHAIN_ENDPOINT=ftp://x"}, 2, "not an http(s) URL"},
	}
	for _, c := range cases {
		t.Run(c.script+" "+strings.Join(c.args, " ")+" "+strings.Join(c.env, " "), func(t *testing.T) {
			_, stderr, code := runScript(t, append([]string{"KFLLM_DEPLOY_DIR=" + dir}, c.env...), c.script, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
}

// TestLangsmithSecretKeepsTheKeyOffTheCommandLine runs
// create-langsmith-secret.sh against a kubectl stand-in (no cluster here)
// that records its arguments and stdin: the secret carries the four
// LANGCHAIN_* keys the InferenceService reads, LANGSMITH_* wins over
// LANGCHAIN_*, and the API key travels on stdin only.
func TestLangsmithSecretKeepsTheKeyOffTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	kubectl := filepath.Join(dir, "kubectl")
	script := `#!/bin/bash
echo "$*" >> "` + dir + `/args"
if [ "$1" = create ]; then
  { echo "--- stdin of create"; cat; echo; } >> "` + dir + `/stdin"
  echo "kind: Secret"
else
  cat > /dev/null
fi
`
	if err := os.WriteFile(kubectl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	const key = "lsv2_pt_0123456789abcdef"
	_, stderr, code := runScript(t, []string{"KUBECTL=" + kubectl, "NAMESPACE=team-a",
		"LANGCHAIN_API_KEY=ignored", "LANGSMITH_API_KEY=" + key, "LANGCHAIN_PROJECT=squad"}, "create-langsmith-secret.sh")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if strings.Contains(string(args), key) || strings.Contains(stderr, key) || strings.Contains(string(args), "ignored") {
		t.Errorf("the API key is on a command line or in output:\nargs: %s\nstderr: %s", args, stderr)
	}
	if !strings.Contains(string(stdin), key) {
		t.Errorf("the API key did not reach kubectl on stdin (LANGSMITH_ wins): %q", stdin)
	}
	for _, k := range Secrets[LangSmithSecret] {
		if !strings.Contains(string(args), k+"=") {
			t.Errorf("secret key %s missing: %s", k, args)
		}
	}
	for _, want := range []string{"--namespace team-a", "LANGCHAIN_PROJECT=squad", "LANGCHAIN_TRACING_V2=true", "apply -f -"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("kubectl calls lack %q:\n%s", want, args)
		}
	}
}

// fakeKubectl writes a kubectl stand-in (there is no cluster here) that
// records each call in dir/calls, answers the LoadBalancer's address for
// `get svc llm-ui`, and fails calls whose arguments contain fail.
func fakeKubectl(t *testing.T, dir, fail string) string {
	t.Helper()
	p := filepath.Join(dir, "kubectl")
	script := `#!/bin/bash
echo "$*" >> "` + dir + `/calls"
if [ -n "` + fail + `" ] && [[ "$*" == *"` + fail + `"* ]]; then echo "Error from server (NotFound)" >&2; exit 1; fi
if [[ "$*" == *"get svc llm-ui"* ]]; then printf '203.0.113.7'; fi
exit 0
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeployTargetsAgainstAKubectlStandIn walks api-deploy, ui-deploy and
// undeploy through their checks to `kubectl apply -k` / `delete -k` of the
// rendered overlay, in the namespace given, and the way out when something
// the cluster needs is missing.
func TestDeployTargetsAgainstAKubectlStandIn(t *testing.T) {
	cases := []struct {
		target, fail string
		code         int
		wantCalls    []string
		wantOut      string
	}{
		{"api-deploy", "", 0, []string{
			"get crd inferenceservices.serving.kserve.io", "-n team-a get secret hf-secret",
			"apply -k DIR/api", "-n team-a wait --for=condition=Ready inferenceservice/llm-api --timeout=10m"}, "llm-api deployed in team-a"},
		{"api-deploy", "get secret hf-secret", 1, nil, "secret hf-secret is missing in team-a: run HF_TOKEN=... make create-secret"},
		{"api-deploy", "get crd inferenceservices", 1, nil, "install KServe"},
		{"api-deploy", "get namespace", 1, nil, "namespace team-a does not exist"},
		{"ui-deploy", "", 0, []string{"apply -k DIR/ui", "-n team-a rollout status deployment/llm-ui --timeout=10m",
			"get svc llm-ui -n team-a -o jsonpath={.status.loadBalancer.ingress[0].ip}"}, "Open http://203.0.113.7/"},
		{"undeploy", "", 0, []string{"delete -k DIR/ui --ignore-not-found", "delete -k DIR/api --ignore-not-found"}, "removed llm-ui and llm-api from team-a"},
	}
	for _, c := range cases {
		t.Run(c.target+" "+c.fail, func(t *testing.T) {
			dir := t.TempDir()
			kubectl := fakeKubectl(t, dir, c.fail)
			out, stderr, code := runScript(t, []string{"KUBECTL=" + kubectl, "KFLLM_DEPLOY_DIR=" + dir,
				"NAMESPACE=team-a", "MODEL_ID=alice/squad-llama"}, "deploy.sh", c.target)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, stderr)
			}
			if !strings.Contains(out+stderr, c.wantOut) {
				t.Errorf("output lacks %q:\n%s%s", c.wantOut, out, stderr)
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			got := strings.ReplaceAll(string(calls), dir, "DIR")
			for _, w := range c.wantCalls {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("no call %q among:\n%s", w, got)
				}
			}
			if c.code != 0 && (strings.Contains(got, "apply ") || strings.Contains(got, "delete ")) {
				t.Errorf("changed the cluster although a check failed:\n%s", got)
			}
		})
	}
}

// TestDeployServesAnAdapterOrAFullModel: `make api-deploy MODEL_ID=...`
// takes a PEFT adapter repo (what the pipeline uploads by default,
// merge_lora false) as it takes a full model (merge_lora true, or lora_r 0):
// both render to manifests that meet the contracts, and serving gets the
// repo, pinned revision included, as --model-id, which loads a full model or
// an adapter with the base named in its adapter_config.json. The adapter's
// base is a second download: it needs the same HF_TOKEN (a gated base) and
// the writable Hub cache, both of which the pod has.
func TestDeployServesAnAdapterOrAFullModel(t *testing.T) {
	for _, modelID := range []string{
		"alice/squad-llama",        // a full model: config.json + model.safetensors
		"alice/squad-lora@" + sha1, // an adapter: adapter_config.json + adapter_model.safetensors, at the run's commit_sha
	} {
		t.Run(modelID, func(t *testing.T) {
			dir := t.TempDir()
			env := []string{"KFLLM_DEPLOY_DIR=" + dir, "MODEL_ID=" + modelID}
			var dirs []string
			for _, base := range []string{"api", "ui"} {
				out, stderr, code := runScript(t, env, "deploy.sh", "render", base)
				if code != 0 {
					t.Fatalf("render %s: exit %d: %s", base, code, stderr)
				}
				dirs = append(dirs, strings.TrimSpace(out))
			}
			b, err := RenderBundle(dirs...)
			if err != nil {
				t.Fatal(err)
			}
			e := expect(t)
			e.ModelID = modelID
			for _, err := range CheckBundle(b, e) {
				t.Error(err)
			}
			c := b.InferenceServices[APIName].Spec.Predictor.Containers[0]
			vars := map[string]string{}
			var cache string
			for _, ev := range c.Env {
				switch {
				case ev.ValueFrom != nil && ev.ValueFrom.ConfigMapKeyRef != nil:
					ref := ev.ValueFrom.ConfigMapKeyRef
					vars[ev.Name] = b.ConfigMaps[ref.Name].Data[ref.Key]
				case ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil:
					vars[ev.Name] = "secret:" + ev.ValueFrom.SecretKeyRef.Name + "/" + ev.ValueFrom.SecretKeyRef.Key
				default:
					vars[ev.Name] = ev.Value
				}
				if ev.Name == "HF_HOME" {
					cache = ev.Value
				}
			}
			// Kubernetes expands $(NAME) in args from the container's env.
			var argv []string
			for _, a := range c.Args {
				for k, v := range vars {
					a = strings.ReplaceAll(a, "$("+k+")", v)
				}
				argv = append(argv, a)
			}
			if !slices.Contains(argv, "--model-id="+modelID) {
				t.Errorf("serving's arguments %q do not carry --model-id=%s", argv, modelID)
			}
			if vars["HF_TOKEN"] != "secret:hf-secret/HF_TOKEN" {
				t.Errorf("HF_TOKEN is %q, want hf-secret's: a gated base would not download", vars["HF_TOKEN"])
			}
			writable := false
			for _, m := range c.VolumeMounts {
				writable = writable || (cache != "" && m.MountPath == cache && !m.ReadOnly)
			}
			if !writable {
				t.Errorf("HF_HOME %q is not a writable mount: the base's snapshot has nowhere to go", cache)
			}
		})
	}
}

const sha1 = "0123456789abcdef0123456789abcdef01234567"

// TestDeployServesLoRAAdapters: `make api-deploy LORA_ADAPTERS=...` puts
// serving's list of more adapters (docs/design.md §5) into llm-api-config,
// written back in the form serving reads (spaces and empty items dropped),
// and the container gets it as LORA_ADAPTERS; the rendered manifests meet
// the contracts, the list's own checks included.
func TestDeployServesLoRAAdapters(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found")
	}
	dir := t.TempDir()
	kubectl := fakeKubectl(t, dir, "")
	env := []string{"KUBECTL=" + kubectl, "KFLLM_DEPLOY_DIR=" + dir}
	cmd := exec.Command("make", "--no-print-directory", "-C", repo, "api-deploy",
		"MODEL_ID=alice/squad-lora@"+sha1, "LORA_ADAPTERS= squad-v2=alice/squad-lora-v2@"+sha1+", ,chat=bob/chat-lora")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make api-deploy: %v\n%s", err, out)
	}
	out, stderr, code := runScript(t, env, "deploy.sh", "render", "ui")
	if code != 0 {
		t.Fatalf("render ui: exit %d: %s", code, stderr)
	}
	b, err := RenderBundle(filepath.Join(dir, "api"), strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	want := "squad-v2=alice/squad-lora-v2@" + sha1 + ",chat=bob/chat-lora"
	e := expect(t)
	e.ModelID, e.LoRAAdapters = "alice/squad-lora@"+sha1, want
	for _, err := range CheckBundle(b, e) {
		t.Error(err)
	}
	var got string
	for _, ev := range b.InferenceServices[APIName].Spec.Predictor.Containers[0].Env {
		if ev.Name == "LORA_ADAPTERS" && ev.ValueFrom != nil && ev.ValueFrom.ConfigMapKeyRef != nil {
			ref := ev.ValueFrom.ConfigMapKeyRef
			got = b.ConfigMaps[ref.Name].Data[ref.Key]
		}
	}
	if got != want {
		t.Errorf("serving's LORA_ADAPTERS from the ConfigMap is %q, want %q", got, want)
	}

	// Without LORA_ADAPTERS the key is there and empty: the model alone.
	_, stderr, code = runScript(t, append(env, "MODEL_ID=alice/squad-lora"), "deploy.sh", "render", "api")
	if code != 0 {
		t.Fatalf("render api: exit %d: %s", code, stderr)
	}
	b, err = RenderBundle(filepath.Join(dir, "api"), strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"]; !ok || v != "" {
		t.Errorf("LORA_ADAPTERS unset: ConfigMap holds %q (present %v), want it empty", v, ok)
	}
}

// TestDeployRefusesBadLoRAAdapters: a list serving would refuse (or that
// names no adapter a pod can fetch) stops the render before anything is
// applied, with the item named.
func TestDeployRefusesBadLoRAAdapters(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ list, want string }{
		{"a=alice/x,a=alice/y", `the name a is given twice`},
		{"a=alice/x,llm-api=alice/y", `llm-api is the base model's name`},
		{"alice/x", `want NAME=OWNER/NAME[@REV]`},
		{"a=not a repo", `not a Hub repo id OWNER/NAME[@REV]`},
		{"a=alice/x@", `not a Hub repo id OWNER/NAME[@REV]`},
		{"a/b=alice/x", `the name may hold only`},
		{"a=/models/x", `not a Hub repo id OWNER/NAME[@REV]`},
	} {
		t.Run(c.list, func(t *testing.T) {
			kubectl := fakeKubectl(t, dir, "")
			_, stderr, code := runScript(t, []string{"KFLLM_DEPLOY_DIR=" + dir, "KUBECTL=" + kubectl,
				"MODEL_ID=alice/squad", "LORA_ADAPTERS=" + c.list}, "deploy.sh", "api-deploy")
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, c.want)
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			if strings.Contains(string(calls), "apply ") {
				t.Errorf("applied although the list is bad:\n%s", calls)
			}
		})
	}
}
