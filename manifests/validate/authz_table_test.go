package validate

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Who reaches llm-api and llm-ui: the rendered manifests' policies beside
// the policy Kubeflow's profile controller keeps in the namespace
// (testdata/kubeflow-profile-authorizationpolicy.yaml), evaluated with
// Istio's semantics (authz.go), for the callers a profile namespace has.
// `go test -v -run TestWhoReaches` prints the table.

const profileFixture = "testdata/kubeflow-profile-authorizationpolicy.yaml"

// profilePolicy is ns-owner-access-istio as the profile controller writes it
// for a profile named ns (the fixture is for DefaultNamespace).
func profilePolicy(t *testing.T, ns string) []AuthzPolicy {
	t.Helper()
	data, err := os.ReadFile(profileFixture)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := DecodeAuthzPolicies([]byte(strings.ReplaceAll(string(data), DefaultNamespace, ns)), profileFixture)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// Istio's sidecar does not see every connection into its pod: the
// injector's istio-iptables returns inbound connections to 15090, 15021 and
// the agent's status port 15020 before redirection (-d 15090,15021,15020),
// and the connections the agent opens from 127.0.0.6 to its own pod, the
// application probes it forwards, are returned before redirection too
// (ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN). Authorization policies
// never see those.
const (
	istioStatusPort = 15020
	agentSource     = "127.0.0.6"
)

func sidecarSees(port int, source string) bool {
	return source != agentSource && port != istioStatusPort && port != 15021 && port != 15090
}

// access is one row of the table.
type access struct {
	who    string
	r      Request
	source string // connection source, when it is the Istio agent
	want   Verdict
}

// probeAccesses are the requests the kubelet's HTTP probes of the API's
// container turn into. With the injector's rewrite
// (sidecar.istio.io/rewriteAppHTTPProbers "true"), the kubelet calls the
// agent at :15020/app-health/CONTAINER/{startupz,livez,readyz}, and the
// agent calls the container's probe from 127.0.0.6 (istio.io "Health
// Checking of Istio Services"). Without it, the kubelet calls the container
// itself, in plain text, through the sidecar.
func probeAccesses(b *Bundle, api Workload, want Verdict) []access {
	isvc := b.InferenceServices[APIName]
	c := isvc.Spec.Predictor.Containers[0]
	rewrite := isvc.Annotations[probeRewrite] == "true"
	var out []access
	for _, p := range []struct {
		kind, agentPath string
		path            string
	}{
		{"startup", "startupz", probePath(c.StartupProbe, servingHTTPPort)},
		{"liveness", "livez", probePath(c.LivenessProbe, servingHTTPPort)},
		{"readiness", "readyz", probePath(c.ReadinessProbe, servingHTTPPort)},
	} {
		if rewrite {
			out = append(out,
				access{who: "kubelet " + p.kind + " probe (rewritten, to the agent)", want: want,
					r: Request{To: api, Port: istioStatusPort, Method: "GET", Path: "/app-health/" + c.Name + "/" + p.agentPath}},
				access{who: "Istio agent forwarding the " + p.kind + " probe", source: agentSource, want: want,
					r: Request{To: api, Port: servingHTTPPort, Method: "GET", Path: p.path}})
		} else {
			out = append(out, access{who: "kubelet " + p.kind + " probe (not rewritten)", want: want,
				r: Request{To: api, Port: servingHTTPPort, Method: "GET", Path: p.path}})
		}
	}
	return out
}

// accessTable is what must hold in a profile namespace ns of a mesh whose
// trust domain is td, with the owner user@example.com.
func accessTable(b *Bundle, ns, td string) []access {
	id := func(ns, sa string) string { return fmt.Sprintf(principalTemplate, td, ns, sa) }
	in := func(names ...string) string {
		for i, n := range names {
			names[i] = ns + "/" + n
		}
		return strings.Join(names, ", ")
	}
	allow := func(names ...string) Verdict { return Verdict{Allow: true, By: "ALLOW " + in(names...)} }
	deny := Verdict{Allow: false, By: "DENY " + in(APIDenyPolicy)}
	notSeen := Verdict{Allow: true, By: "not intercepted by the sidecar"}
	const owner = "user@example.com"
	ownerHeader := map[string]string{"kubeflow-userid": owner}
	spoofed := map[string]string{"kubeflow-userid": owner,
		"x-forwarded-client-cert": "By=spiffe://" + id(ns, "llm-api") + ";URI=spiffe://" + id(ns, UIName)}

	isvc := b.InferenceServices[APIName]
	api := Workload{Namespace: ns, Labels: isvcWorkload(isvc).podLabels}
	dep := b.Deployments[UIName]
	ui := Workload{Namespace: ns, Labels: dep.Spec.Template.Labels}
	uiSA := dep.Spec.Template.Spec.ServiceAccountName
	predict := "/v1/models/" + b.ConfigMaps[APIConfig].Data["MODEL_NAME"] + ":predict"
	toAPI := func(principal, method, path string, h map[string]string) Request {
		return Request{To: api, Port: servingHTTPPort, Principal: principal, Method: method, Path: path, Headers: h}
	}
	toUI := func(principal, path string, h map[string]string) Request {
		return Request{To: ui, Port: uiHTTPPort, Principal: principal, Method: "GET", Path: path, Headers: h}
	}

	rows := []access{
		{who: "the UI (llm-ui), predict", r: toAPI(id(ns, uiSA), "POST", predict, nil), want: allow(APIPolicy, profilePolicyName)},
		{who: "the UI (llm-ui), model status", r: toAPI(id(ns, uiSA), "GET", "/v1/models/llm-api", nil), want: allow(APIPolicy, profilePolicyName)},
		{who: "a notebook of the namespace (default-editor)", r: toAPI(id(ns, "default-editor"), "POST", predict, nil), want: deny},
		{who: "a notebook of the namespace, GET /healthz (a profile path)", r: toAPI(id(ns, "default-editor"), "GET", "/healthz", nil), want: deny},
		{who: "a pipeline step of the namespace (pipeline-runner)", r: toAPI(id(ns, "pipeline-runner"), "POST", predict, nil), want: deny},
		{who: "the ingress gateway with the owner's kubeflow-userid", r: toAPI(id("istio-system", "istio-ingressgateway-service-account"), "POST", predict, ownerHeader), want: deny},
		{who: "the KFP UI with the owner's kubeflow-userid", r: toAPI(id("kubeflow", "ml-pipeline-ui"), "POST", predict, ownerHeader), want: deny},
		{who: "the notebook controller, GET */api/kernels (a profile rule)", r: toAPI(id("kubeflow", "notebook-controller-service-account"), "GET", "/notebook/x/api/kernels", nil), want: deny},
		{who: "a workload of another namespace", r: toAPI(id("kubeflow-user-other", "default-editor"), "POST", predict, nil), want: deny},
		{who: "Knative's activator, GET /healthz", r: toAPI(id("knative-serving", "controller"), "GET", "/healthz", nil), want: deny},
		{who: "plain text, no mTLS identity", r: toAPI("", "POST", predict, nil), want: deny},
		{who: "plain text with the owner's header and a forged client-cert header", r: toAPI("", "POST", predict, spoofed), want: deny},
		{who: "a notebook forging the UI in headers", r: toAPI(id(ns, "default-editor"), "POST", predict, spoofed), want: deny},
		{who: "the API itself (llm-api) over its Service", r: toAPI(id(ns, APIName), "POST", predict, nil), want: deny},
	}
	rows = append(rows, probeAccesses(b, api, notSeen)...)
	rows = append(rows,
		access{who: "a browser through the LoadBalancer (plain text) to the UI", r: toUI("", "/", nil), want: allow(UIPolicy)},
		access{who: "a browser through the ingress gateway, as the owner, to the UI", r: toUI(id("istio-system", "istio-ingressgateway-service-account"), "/", ownerHeader), want: allow(UIPolicy, profilePolicyName)},
		access{who: "kubelet probe of the UI (plain text, 8081 /healthz)", r: toUI("", "/healthz", nil), want: allow(UIPolicy, profilePolicyName)},
		access{who: "a notebook of the namespace to the UI", r: toUI(id(ns, "default-editor"), "/", nil), want: allow(profilePolicyName)},
		access{who: "a workload of another namespace to the UI", r: toUI(id("kubeflow-user-other", "default-editor"), "/", nil), want: Verdict{Allow: false, By: "no ALLOW policy matches"}},
	)
	return rows
}

const profilePolicyName = "ns-owner-access-istio"

// decide is the sidecar's verdict: connections it does not see are not its
// to decide; the others go through the evaluator.
func decide(m Mesh, ps []AuthzPolicy, a access) (Verdict, error) {
	if !sidecarSees(a.r.Port, a.source) {
		return Verdict{Allow: true, By: "not intercepted by the sidecar"}, nil
	}
	return m.Evaluate(ps, a.r)
}

// checkAccess evaluates the table and returns it as Markdown.
func checkAccess(t *testing.T, b *Bundle, ns string, m Mesh) string {
	t.Helper()
	ps := append(b.AuthzPolicies(), profilePolicy(t, ns)...)
	td := m.TrustDomain
	var md strings.Builder
	fmt.Fprintf(&md, "\nnamespace %s, trust domain %s\n\n| request | expected | decided by |\n| --- | --- | --- |\n", ns, td)
	for _, a := range accessTable(b, ns, td) {
		got, err := decide(m, ps, a)
		if err != nil {
			t.Errorf("%s: %v", a.who, err)
			continue
		}
		if got != a.want {
			t.Errorf("%s (%s %s:%d%s): got %v, want %v", a.who, a.r.Method, a.r.To.Labels, a.r.Port, a.r.Path, got, a.want)
		}
		verdict := "deny"
		if got.Allow {
			verdict = "allow"
		}
		fmt.Fprintf(&md, "| %s | %s | %s |\n", a.who, verdict, got.By)
	}
	return md.String()
}

// TestWhoReachesTheAPI: only the UI's identity reaches llm-api, beside
// Kubeflow's ns-owner-access-istio, in the bases' namespace and trust
// domain and in another namespace and trust domain rendered through
// scripts/deploy.sh (the overlay `make api-deploy` / `ui-deploy` applies);
// kubelet probes still reach the container; browsers reach the UI.
func TestWhoReachesTheAPI(t *testing.T) {
	t.Run("bases", func(t *testing.T) {
		b, err := RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
		if err != nil {
			t.Fatal(err)
		}
		t.Log(checkAccess(t, b, DefaultNamespace, Mesh{TrustDomain: DefaultTrustDomain}))
	})
	t.Run("deploy.sh team-a example.org", func(t *testing.T) {
		b := renderDeploy(t, "team-a", "example.org")
		t.Log(checkAccess(t, b, "team-a", Mesh{TrustDomain: "example.org"}))
	})
	// The default TRUST_DOMAIN (cluster.local) in a mesh whose trust domain
	// is another: Istio reads cluster.local as the mesh's own.
	t.Run("deploy.sh team-a default trust domain in mesh example.org", func(t *testing.T) {
		b := renderDeploy(t, "team-a", "")
		t.Log(checkAccess(t, b, "team-a", Mesh{TrustDomain: "example.org"}))
	})
}

// renderDeploy renders the api and ui overlays scripts/deploy.sh writes for
// NAMESPACE ns and TRUST_DOMAIN td (unset when empty).
func renderDeploy(t *testing.T, ns, td string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	env := []string{"KFLLM_DEPLOY_DIR=" + dir, "NAMESPACE=" + ns, "MODEL_ID=alice/squad-llama"}
	if td != "" {
		env = append(env, "TRUST_DOMAIN="+td)
	}
	var dirs []string
	for _, base := range []string{"api", "ui"} {
		out, stderr, code := runScript(t, env, "deploy.sh", "render", base)
		if code != 0 {
			t.Fatalf("deploy.sh render %s: exit %d: %s", base, code, stderr)
		}
		dirs = append(dirs, strings.TrimSpace(out))
	}
	b, err := RenderBundle(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAccessTableCatchesWiderPolicies: the table is not a tautology. With the
// API's policies as they were before the DENY policy (ALLOW llm-ui, and
// knative-serving on probe paths), the profile's ALLOW lets the notebook,
// the pipeline step, the gateway and the KFP UI with the owner's header and
// the header forger through; without the probe rewrite the kubelet's probes
// are refused; a TRUST_DOMAIN that is not the mesh's locks the UI out (the
// DENY policy fails closed).
func TestAccessTableCatchesWiderPolicies(t *testing.T) {
	before := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: llm-api-allow-ui
  namespace: kubeflow-user-example-com
spec:
  selector:
    matchLabels:
      serving.kserve.io/inferenceservice: llm-api
  rules:
    - from:
        - source:
            principals: [cluster.local/ns/kubeflow-user-example-com/sa/llm-ui]
    - from:
        - source:
            namespaces: [knative-serving]
      to:
        - operation:
            methods: [GET]
            paths: [/healthz, /metrics, /, /v1/models/llm-api]
`
	b, err := RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
	if err != nil {
		t.Fatal(err)
	}
	ps := filterOut(filterOut(b.AuthzPolicies(), APIDenyPolicy), APIPolicy)
	ps = append(ps, profilePolicy(t, DefaultNamespace)...)
	ps = append(ps, policies(t, before)...)
	var wrong []string
	for _, a := range accessTable(b, DefaultNamespace, DefaultTrustDomain) {
		got, err := decide(Mesh{}, ps, a)
		if err != nil {
			t.Fatal(err)
		}
		if got.Allow != a.want.Allow {
			wrong = append(wrong, a.who+": "+got.String())
		}
	}
	t.Logf("the policies before the DENY policy give the wrong verdict for %d requests:\n%s", len(wrong), strings.Join(wrong, "\n"))
	for _, who := range []string{"a notebook of the namespace (default-editor)", "a pipeline step", "the ingress gateway with",
		"the KFP UI with", "a notebook forging the UI", "Knative's activator"} {
		if !strings.Contains(strings.Join(wrong, "\n"), who) {
			t.Errorf("the old policies still deny %q; the table would not have caught them", who)
		}
	}

	// Without the injector's probe rewrite, the kubelet's probes are plain
	// text to the container's port, and llm-api-deny-others refuses them:
	// the probe rows depend on the annotation, not on the table.
	b, err = RenderBundle(repoPath("manifests", "api"), repoPath("manifests", "ui"))
	if err != nil {
		t.Fatal(err)
	}
	delete(b.InferenceServices[APIName].Annotations, probeRewrite)
	ps = append(b.AuthzPolicies(), profilePolicy(t, DefaultNamespace)...)
	api := Workload{Namespace: DefaultNamespace, Labels: isvcWorkload(b.InferenceServices[APIName]).podLabels}
	probes := probeAccesses(b, api, Verdict{})
	if len(probes) != 3 {
		t.Fatalf("probes without rewrite: %v", probes)
	}
	for _, a := range probes {
		got, err := decide(Mesh{}, ps, a)
		if err != nil || got != (Verdict{Allow: false, By: "DENY " + DefaultNamespace + "/" + APIDenyPolicy}) {
			t.Errorf("%s %s without the rewrite: %v, %v; want denied by %s", a.who, a.r.Path, got, err, APIDenyPolicy)
		}
	}

	// A trust domain that is not the mesh's: the UI is denied too.
	lock := renderDeploy(t, DefaultNamespace, "other.example")
	ps = append(lock.AuthzPolicies(), profilePolicy(t, DefaultNamespace)...)
	ui := accessTable(lock, DefaultNamespace, DefaultTrustDomain)[0]
	got, err := decide(Mesh{TrustDomain: DefaultTrustDomain}, ps, ui)
	if err != nil || got.Allow {
		t.Errorf("TRUST_DOMAIN other.example in mesh cluster.local: the UI got %v, %v; want denied", got, err)
	}
}

func filterOut(ps []AuthzPolicy, name string) []AuthzPolicy {
	var out []AuthzPolicy
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}

// TestProfileFixtureIsKubeflows: the copy decodes strictly as the
// controller's v1beta1 object and keeps the shape the tests rely on.
func TestProfileFixtureIsKubeflows(t *testing.T) {
	ps := profilePolicy(t, DefaultNamespace)
	if len(ps) != 1 || ps[0].Name != profilePolicyName || ps[0].Spec.GetSelector() != nil || len(ps[0].Spec.GetRules()) != 4 {
		t.Fatalf("fixture: %v", ps)
	}
}
