package validate

import (
	"fmt"
	"os"

	kservev1beta1 "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
)

// TestManifestFilesDecodeStrictly: every YAML file under manifests/ decodes
// strictly into its real Go type (kustomization.yaml into kustomize's).
func TestManifestFilesDecodeStrictly(t *testing.T) {
	files, err := ManifestFiles(repoPath("manifests"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d manifest files: %v", len(files), files)
	}
	b := NewBundle()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			k, err := DecodeKustomization(data)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			for _, r := range k.Resources {
				if _, err := os.Stat(filepath.Join(filepath.Dir(f), r)); err != nil {
					t.Errorf("%s: resource %s: %v", f, r, err)
				}
			}
			continue
		}
		if err := b.Add(data, f); err != nil {
			t.Error(err)
		}
	}
}

// TestStrictDecodingRejectsTypos: a misspelt field in each kind we ship is an
// error, Istio specs included (whose own JSON decoder would drop it).
func TestStrictDecodingRejectsTypos(t *testing.T) {
	for file, typo := range map[string][2]string{
		"api/inferenceservice.yaml":    {"readinessProbe:", "readinesProbe:"},
		"api/authorizationpolicy.yaml": {"principals:", "principal:"},
		"ui/peerauthentication.yaml":   {"portLevelMtls:", "portLevelMTLS:"},
		"ui/deployment.yaml":           {"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		"ui/service.yaml":              {"targetPort:", "targetport:"},
		"api/configmap.yaml":           {"data:", "datas:"},
	} {
		data, err := os.ReadFile(repoPath("manifests", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := NewBundle().Add(data, file); err != nil {
			t.Fatalf("%s as committed: %v", file, err)
		}
		bad := strings.Replace(string(data), typo[0], typo[1], 1)
		if bad == string(data) {
			t.Fatalf("%s: %q not found", file, typo[0])
		}
		if err := NewBundle().Add([]byte(bad), file); err == nil {
			t.Errorf("%s with %s decoded without error", file, typo[1])
		}
	}
}

func expect(t *testing.T) Expect {
	return Expect{Namespace: DefaultNamespace, Entrypoints: entrypoints(t), EnvReads: envReads(t)}
}

// TestBasesMeetContracts renders manifests/api and manifests/ui with
// kustomize and checks what ties them together (see CheckBundle).
func TestBasesMeetContracts(t *testing.T) {
	b, err := RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"AuthorizationPolicy/llm-api-allow-ui", "AuthorizationPolicy/llm-api-deny-others", "AuthorizationPolicy/llm-ui-allow-external",
		"ConfigMap/llm-api-config", "ConfigMap/llm-ui-config", "Deployment/llm-ui",
		"InferenceService/llm-api", "PeerAuthentication/llm-ui-external", "Service/llm-ui",
		"ServiceAccount/llm-api", "ServiceAccount/llm-ui",
	}
	if got := strings.Join(b.Keys(), " "); got != strings.Join(want, " ") {
		t.Errorf("rendered objects:\n got %s\nwant %s", got, strings.Join(want, " "))
	}
	for _, err := range CheckBundle(b, expect(t)) {
		t.Error(err)
	}
}

// TestRemoteOverlayMeetsContracts renders the api-remote overlay (issue 13:
// a hosted model, no GPU) with the UI: the same contracts hold, the backend
// env is one serving reads, and no GPU is requested.
func TestRemoteOverlayMeetsContracts(t *testing.T) {
	b, err := RenderBundle(repoPath("manifests", "overlays", "api-remote"), repoPath("manifests", "ui"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range CheckBundle(b, expect(t)) {
		t.Error(err)
	}
	c := b.InferenceServices[APIName].Spec.Predictor.Containers[0]
	env := map[string]string{}
	for _, ev := range c.Env {
		env[ev.Name] = ev.Value
	}
	if env["BACKEND"] != "openai" || env["BACKEND_URL"] == "" {
		t.Errorf("overlay env %v: want BACKEND=openai and a BACKEND_URL", env)
	}
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if _, ok := rl[corev1.ResourceName(gpuResource)]; ok {
			t.Errorf("the remote backend still requests %s", gpuResource)
		}
	}
	// The check itself: a GPU left on a remote backend is caught.
	c.Resources.Limits[corev1.ResourceName(gpuResource)] = c.Resources.Requests[corev1.ResourceCPU]
	b.InferenceServices[APIName].Spec.Predictor.Containers[0] = c
	if errs := CheckBundle(b, expect(t)); len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), "remote model") {
		t.Errorf("a GPU on the remote backend passed: %v", errs)
	}
}

// TestContractChecksCatchMistakes: each semantic check fails on a bundle
// that breaks it.
func TestContractChecksCatchMistakes(t *testing.T) {
	e := expect(t)
	cases := []struct {
		name   string
		mutate func(b *Bundle)
		want   string
	}{
		{"principal in another namespace", func(b *Bundle) {
			b.AuthorizationPolicies[APIPolicy].Spec.Rules[0].From[0].Source.Principals[0] = "cluster.local/ns/other/sa/llm-ui"
		}, "only"},
		{"UI runs as another service account", func(b *Bundle) {
			b.Deployments[UIName].Spec.Template.Spec.ServiceAccountName = "default"
		}, "service account"},
		{"policy selects nothing", func(b *Bundle) {
			b.AuthorizationPolicies[UIPolicy].Spec.Selector.MatchLabels = map[string]string{"app": "llm-iu"}
		}, "selector"},
		{"readiness on another model", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["MODEL_NAME"] = "other"
		}, "readiness"},
		{"unread ConfigMap key", func(b *Bundle) {
			b.ConfigMaps[UIConfig].Data["API_URLS"] = "x"
		}, "read by no container"},
		{"API_URL to the wrong service", func(b *Bundle) {
			b.ConfigMaps[UIConfig].Data["API_URL"] = "http://llm-api"
		}, "predictor Service"},
		{"command is not the entrypoint", func(b *Bundle) {
			b.InferenceServices[APIName].Spec.Predictor.Containers[0].Command = []string{"/serving"}
		}, "ENTRYPOINT"},
		{"writable root", func(b *Bundle) {
			f := false
			b.Deployments[UIName].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem"},
		{"no GPU", func(b *Bundle) {
			delete(b.InferenceServices[APIName].Spec.Predictor.Containers[0].Resources.Limits, corev1.ResourceName(gpuResource))
		}, "nvidia.com/gpu"},
		{"wrong namespace", func(b *Bundle) {
			m := b.Meta["Service/llm-ui"]
			m.Namespace = "default"
			b.Meta["Service/llm-ui"] = m
		}, "namespace"},
		{"secret key nobody creates", func(b *Bundle) {
			for _, ev := range b.InferenceServices[APIName].Spec.Predictor.Containers[0].Env {
				if ev.Name == "HF_TOKEN" {
					ev.ValueFrom.SecretKeyRef.Key = "TOKEN"
				}
			}
		}, "not a secret the scripts create"},
		{"KServe webhook: two predictor containers named alike", func(b *Bundle) {
			p := &b.InferenceServices[APIName].Spec.Predictor
			p.Containers = append(p.Containers, p.Containers[0])
			p.Containers[1].Name = "other"
			p.SKLearn = &kservev1beta1.SKLearnSpec{}
		}, "webhook"},
		{"no DENY policy", func(b *Bundle) {
			delete(b.AuthorizationPolicies, APIDenyPolicy)
		}, "without a DENY policy"},
		{"DENY policy narrowed to one path", func(b *Bundle) {
			r := b.AuthorizationPolicies[APIDenyPolicy].Spec.Rules[0]
			r.To = []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/v1/*"}}}}
		}, "every port and path"},
		{"DENY policy spares another principal", func(b *Bundle) {
			s := b.AuthorizationPolicies[APIDenyPolicy].Spec.Rules[0].From[0].Source
			s.NotPrincipals = append(s.NotPrincipals, "cluster.local/ns/kubeflow-user-example-com/sa/default-editor")
		}, "notPrincipals"},
		{"ALLOW policy admits the namespace", func(b *Bundle) {
			s := b.AuthorizationPolicies[APIPolicy].Spec.Rules[0].From[0].Source
			s.Namespaces = []string{DefaultNamespace}
		}, "only the UI"},
		{"probe rewrite off", func(b *Bundle) {
			b.InferenceServices[APIName].Annotations["sidecar.istio.io/rewriteAppHTTPProbers"] = "false"
		}, "plain-text probes"},
		{"an adapter name given twice", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "a=alice/x,a=alice/y"
		}, "the name a is given twice"},
		{"an adapter named like the base", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "llm-api=alice/x"
		}, "llm-api is the base model's name"},
		{"an adapter without a name", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "alice/x"
		}, "LORA_ADAPTERS: item \"alice/x\": want NAME=REF"},
		{"an adapter reference that does not parse", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "a=alice/x@"
		}, "not a Hub repository OWNER/NAME[@REV]"},
		{"an adapter in a directory the pod does not mount", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "a=/adapters/a"
		}, "under none of the container's volume mounts"},
		{"an adapter name that is no route segment", func(b *Bundle) {
			b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = "a:b=alice/x"
		}, "the name may hold only"},
		{"LORA_ADAPTERS not passed to serving", func(b *Bundle) {
			c := &b.InferenceServices[APIName].Spec.Predictor.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(ev corev1.EnvVar) bool { return ev.Name == "LORA_ADAPTERS" })
		}, "read by no container"},
		{"Knative mode", func(b *Bundle) {
			b.InferenceServices[APIName].Annotations["serving.kserve.io/deploymentMode"] = "Serverless"
		}, "RawDeployment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
			if err != nil {
				t.Fatal(err)
			}
			c.mutate(b)
			errs := CheckBundle(b, e)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.want) {
					return
				}
			}
			t.Errorf("want an error containing %q, got %v", c.want, errs)
		})
	}
}

// TestEnvScanFindsWhatTheUIReads: the scan sees ui's API_URL and MODEL_NAME
// (read through an injected getenv) so the env checks above mean something.
func TestEnvScanFindsWhatTheUIReads(t *testing.T) {
	s, err := ScanEnv(repo, modulePath, "ui")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"API_URL", "MODEL_NAME"} {
		if !s.Reads(n) {
			t.Errorf("ui reads %v; want %s among them", s.List(), n)
		}
	}
	if s.Reads("HF_TOKEN") {
		t.Errorf("ui reads %v; it should not see HF_TOKEN", s.List())
	}
}

// TestLoRAAdaptersOnTheBases: the base's empty LORA_ADAPTERS passes, and so
// do Hub references with and without a revision and a directory inside a
// volume the container mounts (an overlay that mounts adapters).
func TestLoRAAdaptersOnTheBases(t *testing.T) {
	for _, list := range []string{"", " a=alice/x , b=bob/y@v1.0,, c=/var/cache/huggingface/adapters/c"} {
		b, err := RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
		if err != nil {
			t.Fatal(err)
		}
		b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] = list
		for _, err := range CheckBundle(b, expect(t)) {
			t.Errorf("LORA_ADAPTERS=%q: %v", list, err)
		}
	}
}
