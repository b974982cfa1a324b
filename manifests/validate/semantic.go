package validate

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	kservev1beta1 "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	"github.com/kserve/kserve/pkg/constants"
	"google.golang.org/protobuf/proto"
	securityapi "istio.io/api/security/v1beta1"
	istiosecurity "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names in the cluster (docs/design.md §7).
const (
	DefaultNamespace = "kubeflow-user-example-com"
	APIName          = "llm-api"
	UIName           = "llm-ui"
	APIConfig        = "llm-api-config"
	UIConfig         = "llm-ui-config"
	APIPolicy        = "llm-api-allow-ui"
	APIDenyPolicy    = "llm-api-deny-others"
	UIPolicy         = "llm-ui-allow-external"
	HFSecret         = "hf-secret"
	LangSmithSecret  = "langsmith-secret"
	IngressGatewaySA = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	// DefaultTrustDomain is what the bases' principals carry; Istio reads
	// it as the mesh's own trust domain.
	DefaultTrustDomain = "cluster.local"
	// probeRewrite is the sidecar injector's annotation that moves HTTP
	// probes to the Istio agent (port 15020), out of the policies' way.
	probeRewrite      = "sidecar.istio.io/rewriteAppHTTPProbers"
	servingHTTPPort   = 8080
	uiHTTPPort        = 8081
	gpuResource       = "nvidia.com/gpu"
	principalTemplate = "%s/ns/%s/sa/%s"
)

// Secrets are the secrets the scripts create (scripts/create-secret.sh,
// scripts/create-langsmith-secret.sh) and the keys they hold.
var Secrets = map[string][]string{
	HFSecret:        {"HF_TOKEN"},
	LangSmithSecret: {"LANGCHAIN_TRACING_V2", "LANGCHAIN_ENDPOINT", "LANGCHAIN_API_KEY", "LANGCHAIN_PROJECT"},
}

// Expect is what CheckBundle holds a rendered api+ui bundle to.
type Expect struct {
	Namespace string
	// TrustDomain the principals in the policies carry; empty means
	// DefaultTrustDomain.
	TrustDomain string
	// Entrypoints are the images' ENTRYPOINTs by component; a container
	// must run exactly that command.
	Entrypoints map[string]string
	// EnvReads are the variables each binary reads, by component; a
	// component missing here is not checked for env names.
	EnvReads map[string]EnvSet
	// Registry and Tag, when set, are what every image must be.
	Registry, Tag string
	// ModelID, when set, is what llm-api-config must hold.
	ModelID string
	// LoRAAdapters, when set, is what llm-api-config's LORA_ADAPTERS must
	// hold.
	LoRAAdapters string
}

type workload struct {
	kind, name string
	podLabels  map[string]string
	sa         string
	podSC      *corev1.PodSecurityContext
	containers []corev1.Container
}

func (w workload) String() string { return w.kind + "/" + w.name }

var imageRE = regexp.MustCompile(`^(.+)/kfllm-([a-z]+):([A-Za-z0-9_][A-Za-z0-9_.-]*)$`)

// CheckBundle returns every way the bundle breaks the contracts.
func CheckBundle(b *Bundle, e Expect) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	for _, k := range b.Keys() {
		if ns := b.Meta[k].Namespace; ns != e.Namespace {
			bad("%s: namespace %q, want %q", k, ns, e.Namespace)
		}
	}
	isvc, ok := b.InferenceServices[APIName]
	if !ok {
		bad("no InferenceService %s", APIName)
		return errs
	}
	dep, ok := b.Deployments[UIName]
	if !ok {
		bad("no Deployment %s", UIName)
		return errs
	}
	for _, n := range []string{APIName, UIName} {
		if _, ok := b.ServiceAccounts[n]; !ok {
			bad("no ServiceAccount %s", n)
		}
	}
	for _, n := range []string{APIConfig, UIConfig} {
		if _, ok := b.ConfigMaps[n]; !ok {
			bad("no ConfigMap %s", n)
		}
	}
	api := isvcWorkload(isvc)
	ui := workload{kind: "Deployment", name: dep.Name, podLabels: dep.Spec.Template.Labels,
		sa: dep.Spec.Template.Spec.ServiceAccountName, podSC: dep.Spec.Template.Spec.SecurityContext,
		containers: dep.Spec.Template.Spec.Containers}
	if dep.Spec.Selector == nil || !selects(dep.Spec.Selector.MatchLabels, ui.podLabels) {
		bad("Deployment %s: selector does not match its pod template's labels %v", dep.Name, ui.podLabels)
	}
	modelName := b.ConfigMaps[APIConfig].Data["MODEL_NAME"]
	if modelName == "" {
		bad("ConfigMap %s: no MODEL_NAME", APIConfig)
	}
	if e.ModelID != "" && b.ConfigMaps[APIConfig].Data["MODEL_ID"] != e.ModelID {
		bad("ConfigMap %s: MODEL_ID %q, want %q", APIConfig, b.ConfigMaps[APIConfig].Data["MODEL_ID"], e.ModelID)
	}

	used := map[string]map[string]bool{} // ConfigMap -> keys some container reads
	for _, w := range []workload{api, ui} {
		if _, ok := b.ServiceAccounts[w.sa]; !ok {
			bad("%s: service account %q is not in the manifests", w, w.sa)
		}
		if len(w.containers) != 1 {
			bad("%s: %d containers, want 1", w, len(w.containers))
		}
		for _, c := range w.containers {
			errs = append(errs, checkContainer(b, e, w, c, used)...)
		}
	}
	for name, cm := range b.ConfigMaps {
		for k := range cm.Data {
			if !used[name][k] {
				bad("ConfigMap %s: key %s is read by no container", name, k)
			}
		}
	}

	// The API: a custom KServe predictor, as KServe's admission webhook
	// sees it (the same validation code, run here without a cluster).
	if _, err := (&kservev1beta1.InferenceServiceValidator{}).ValidateCreate(context.Background(), isvc.DeepCopy()); err != nil {
		bad("InferenceService %s: KServe's webhook would refuse it: %v", isvc.Name, err)
	}
	if mode := isvc.Annotations[constants.DeploymentMode]; mode != string(constants.LegacyRawDeployment) && mode != string(constants.Standard) {
		bad("InferenceService %s: %s=%q; want RawDeployment (Standard): in Knative mode the gateway's identity, not llm-ui's, reaches the pod", isvc.Name, constants.DeploymentMode, mode)
	}
	if len(api.containers) == 1 {
		errs = append(errs, checkPredictor(isvc, api.containers[0], modelName)...)
		errs = append(errs, checkLoRAAdapters(b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"], modelName, api.containers[0])...)
	}
	if e.LoRAAdapters != "" && b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"] != e.LoRAAdapters {
		bad("ConfigMap %s: LORA_ADAPTERS %q, want %q", APIConfig, b.ConfigMaps[APIConfig].Data["LORA_ADAPTERS"], e.LoRAAdapters)
	}
	// Kubelet probes get past llm-api-deny-others only because the sidecar
	// injector moves them to the Istio agent's port.
	if v := isvc.Annotations[probeRewrite]; v != "true" || slices.Contains(constants.ServiceAnnotationDisallowedList, probeRewrite) {
		bad("InferenceService %s: %s=%q; want \"true\": the kubelet's plain-text probes would otherwise meet %s", isvc.Name, probeRewrite, v, APIDenyPolicy)
	}

	// The UI and how it finds the API.
	if len(ui.containers) == 1 {
		c := ui.containers[0]
		if p, ok := flagValue(c.Args, "--port"); !ok || p != strconv.Itoa(uiHTTPPort) || !hasPort(c, uiHTTPPort) {
			bad("Deployment %s: --port %q and containerPorts %v must both be %d", dep.Name, p, c.Ports, uiHTTPPort)
		}
	}
	if cm, ok := b.ConfigMaps[UIConfig]; ok {
		errs = append(errs, checkAPIURL(cm.Data["API_URL"], isvc.Name, e.Namespace)...)
		if cm.Data["MODEL_NAME"] != modelName {
			bad("ConfigMap %s: MODEL_NAME %q, but the API serves %q (%s)", UIConfig, cm.Data["MODEL_NAME"], modelName, APIConfig)
		}
	}
	svc, ok := b.Services[UIName]
	if !ok {
		bad("no Service %s", UIName)
	} else {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			bad("Service %s: type %q, want LoadBalancer", svc.Name, svc.Spec.Type)
		}
		if !selects(svc.Spec.Selector, ui.podLabels) {
			bad("Service %s: selector %v does not match the UI pods' labels %v", svc.Name, svc.Spec.Selector, ui.podLabels)
		}
		for _, p := range svc.Spec.Ports {
			if len(ui.containers) == 1 && resolvePort(ui.containers[0], p.TargetPort) == 0 {
				bad("Service %s: targetPort %s is no port of the UI container", svc.Name, p.TargetPort.String())
			}
		}
	}

	errs = append(errs, checkPolicies(b, e, api, ui)...)
	return errs
}

func isvcWorkload(isvc *kservev1beta1.InferenceService) workload {
	p := &isvc.Spec.Predictor
	labels := map[string]string{}
	for _, m := range []map[string]string{isvc.Labels, p.Labels, {
		constants.InferenceServicePodLabelKey: isvc.Name,
		constants.KServiceComponentLabel:      string(kservev1beta1.PredictorComponent),
	}} {
		for k, v := range m {
			labels[k] = v
		}
	}
	return workload{kind: "InferenceService", name: isvc.Name, podLabels: labels,
		sa: p.ServiceAccountName, podSC: p.SecurityContext, containers: p.Containers}
}

func checkContainer(b *Bundle, e Expect, w workload, c corev1.Container, used map[string]map[string]bool) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s container %s: "+format, append([]any{w, c.Name}, a...)...))
	}
	m := imageRE.FindStringSubmatch(c.Image)
	if m == nil || !slices.Contains(Components, m[2]) {
		bad("image %q is not REGISTRY/kfllm-<component>:TAG", c.Image)
		return errs
	}
	comp := m[2]
	if e.Registry != "" && (m[1] != e.Registry || m[3] != e.Tag) {
		bad("image %q, want %s/kfllm-%s:%s", c.Image, e.Registry, comp, e.Tag)
	}
	if ep, ok := e.Entrypoints[comp]; ok && (len(c.Command) != 1 || c.Command[0] != ep) {
		bad("command %q, want [%q], the ENTRYPOINT of the kfllm-%s image", c.Command, ep, comp)
	}
	// Security: non-root, read-only root, no privilege, no capabilities.
	sc := c.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(w.podSC != nil && w.podSC.RunAsNonRoot != nil && *w.podSC.RunAsNonRoot)
	if !nonRoot {
		bad("runAsNonRoot is not true")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem is not true")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation is not false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		bad("capabilities must drop ALL and add none")
	}
	// Configuration: every reference resolves, every variable is read.
	reads, known := e.EnvReads[comp]
	checkName := func(name, from string) {
		if known && !reads.Reads(name) {
			bad("sets %s (%s), which the %s binary does not read", name, from, comp)
		}
	}
	for _, ev := range c.Env {
		src := "value"
		if vf := ev.ValueFrom; vf != nil {
			switch {
			case vf.ConfigMapKeyRef != nil:
				r := vf.ConfigMapKeyRef
				src = "ConfigMap " + r.Name + " key " + r.Key
				cm, ok := b.ConfigMaps[r.Name]
				if _, has := cm.Data[r.Key]; (!ok || !has) && !(r.Optional != nil && *r.Optional) {
					bad("env %s: %s is not in the manifests", ev.Name, src)
				}
				if used[r.Name] == nil {
					used[r.Name] = map[string]bool{}
				}
				used[r.Name][r.Key] = true
				if r.Key != ev.Name {
					bad("env %s comes from key %s; name them alike", ev.Name, r.Key)
				}
			case vf.SecretKeyRef != nil:
				r := vf.SecretKeyRef
				src = "Secret " + r.Name + " key " + r.Key
				if !slices.Contains(Secrets[r.Name], r.Key) {
					bad("env %s: %s is not a secret the scripts create (%v)", ev.Name, src, Secrets)
				}
			default:
				src = "field ref"
			}
		}
		checkName(ev.Name, src)
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			keys, ok := Secrets[ef.SecretRef.Name]
			if !ok {
				bad("envFrom secret %s is not a secret the scripts create", ef.SecretRef.Name)
			}
			for _, k := range keys {
				checkName(ef.Prefix+k, "Secret "+ef.SecretRef.Name)
			}
		case ef.ConfigMapRef != nil:
			cm, ok := b.ConfigMaps[ef.ConfigMapRef.Name]
			if !ok {
				bad("envFrom ConfigMap %s is not in the manifests", ef.ConfigMapRef.Name)
				continue
			}
			for k := range cm.Data {
				if used[cm.Name] == nil {
					used[cm.Name] = map[string]bool{}
				}
				used[cm.Name][k] = true
				checkName(ef.Prefix+k, "ConfigMap "+cm.Name)
			}
		}
	}
	// $(VAR) in args must name a variable the container defines.
	defined := map[string]bool{}
	for _, ev := range c.Env {
		defined[ev.Name] = true
	}
	for _, a := range c.Args {
		for _, ref := range varRef.FindAllStringSubmatch(a, -1) {
			if !defined[ref[1]] {
				bad("arg %q refers to $(%s), which is not in env", a, ref[1])
			}
		}
	}
	return errs
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func checkPredictor(isvc *kservev1beta1.InferenceService, c corev1.Container, modelName string) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("InferenceService %s: "+format, append([]any{isvc.Name}, a...)...))
	}
	if c.Name != constants.InferenceServiceContainerName {
		bad("container %q, want %q (KServe's custom predictor)", c.Name, constants.InferenceServiceContainerName)
	}
	if p, ok := flagValue(c.Args, "--http-port"); !ok || p != strconv.Itoa(servingHTTPPort) || !hasPort(c, servingHTTPPort) {
		bad("--http-port %q and containerPorts %v must both be %d", p, c.Ports, servingHTTPPort)
	}
	if v, ok := flagValue(c.Args, "--model-name"); !ok || (v != "$(MODEL_NAME)" && v != modelName) {
		bad("--model-name %q: want $(MODEL_NAME) from %s", v, APIConfig)
	}
	_, byID := flagValue(c.Args, "--model-id")
	dir, byDir := flagValue(c.Args, "--model-dir")
	// A custom predictor's storage URI is the container's STORAGE_URI
	// (or storageUris); the storage initializer then fills /mnt/models.
	storage := ""
	for _, ev := range c.Env {
		if ev.Name == constants.CustomSpecStorageUriEnvVarKey {
			storage = ev.Value
		}
	}
	if len(isvc.Spec.Predictor.StorageUris) > 0 {
		storage = isvc.Spec.Predictor.StorageUris[0].Uri
	}
	switch {
	case byID == byDir:
		bad("want exactly one of --model-id and --model-dir")
	case byDir && (storage == "" || dir != constants.DefaultModelLocalMountPath):
		bad("--model-dir %q needs a storage URI and the storage initializer's %s", dir, constants.DefaultModelLocalMountPath)
	case byID && storage != "":
		bad("--model-id with storage URI %q: the model would be fetched twice", storage)
	}
	// The local engine runs the model on a GPU; a remote backend (BACKEND
	// huggingface or openai, the api-remote overlay) must not hold one.
	backend := "local"
	for _, ev := range c.Env {
		if ev.Name == "BACKEND" {
			backend = ev.Value
		}
	}
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		q, ok := rl[gpuResource]
		if backend == "local" && (!ok || q.Value() < 1) {
			bad("no %s in requests and limits", gpuResource)
			break
		}
		if backend != "local" && ok {
			bad("backend %s answers from a remote model but requests %s", backend, gpuResource)
			break
		}
	}
	if path := probePath(c.ReadinessProbe, servingHTTPPort); path != "/v1/models/"+modelName {
		bad("readiness probe GET %q on %d, want /v1/models/%s (KServe V1 model ready)", path, servingHTTPPort, modelName)
	}
	if path := probePath(c.LivenessProbe, servingHTTPPort); path != "/" {
		bad("liveness probe GET %q on %d, want / (KServe V1 alive)", path, servingHTTPPort)
	}
	return errs
}

func checkAPIURL(raw, isvcName, ns string) []error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return []error{fmt.Errorf("ConfigMap %s: API_URL %q is not an http:// URL", UIConfig, raw)}
	}
	labels := strings.Split(u.Hostname(), ".")
	want := constants.PredictorServiceName(isvcName)
	if labels[0] != want || (len(labels) > 1 && labels[1] != ns) {
		return []error{fmt.Errorf("ConfigMap %s: API_URL %q, want the predictor Service %s in namespace %s", UIConfig, raw, want, ns)}
	}
	if p := u.Port(); p != "" && p != "80" {
		return []error{fmt.Errorf("ConfigMap %s: API_URL %q: the predictor Service listens on 80", UIConfig, raw)}
	}
	return nil
}

func checkPolicies(b *Bundle, e Expect, api, ui workload) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	td := e.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	uiPrincipal := fmt.Sprintf(principalTemplate, td, e.Namespace, ui.sa)
	apiSelector := func(name string, ap *istiosecurity.AuthorizationPolicy) {
		sel := ap.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 || !selects(sel, api.podLabels) || selects(sel, ui.podLabels) {
			bad("AuthorizationPolicy %s: selector %v must select the API's pods %v and not the UI's", name, sel, api.podLabels)
		}
	}
	// onlySource reports whether the policy is one rule with one source
	// carrying one list, and no operation or condition, so that it holds on
	// every port and path.
	onlySource := func(ap *istiosecurity.AuthorizationPolicy) (*securityapi.Source, bool) {
		rules := ap.Spec.GetRules()
		if len(rules) != 1 || len(rules[0].GetFrom()) != 1 || len(rules[0].GetTo())+len(rules[0].GetWhen()) > 0 {
			return nil, false
		}
		return rules[0].GetFrom()[0].GetSource(), true
	}

	// llm-api-allow-ui: the UI gets in whatever other ALLOW policies say.
	if ap, ok := b.AuthorizationPolicies[APIPolicy]; !ok {
		bad("no AuthorizationPolicy %s", APIPolicy)
	} else {
		apiSelector(ap.Name, ap)
		if ap.Spec.GetAction() != securityapi.AuthorizationPolicy_ALLOW {
			bad("AuthorizationPolicy %s: action %s, want ALLOW", ap.Name, ap.Spec.GetAction())
		}
		if src, ok := onlySource(ap); !ok || !proto.Equal(src, &securityapi.Source{Principals: []string{uiPrincipal}}) {
			bad("AuthorizationPolicy %s: want one rule admitting principals [%s] and nothing else; only the UI may call the API", ap.Name, uiPrincipal)
		}
	}
	// llm-api-deny-others: everyone but the UI is denied, whatever ALLOW
	// policies the namespace holds (Kubeflow's ns-owner-access-istio).
	if dp, ok := b.AuthorizationPolicies[APIDenyPolicy]; !ok {
		bad("no AuthorizationPolicy %s: without a DENY policy, the namespace's own ALLOW policies let other callers reach the API", APIDenyPolicy)
	} else {
		apiSelector(dp.Name, dp)
		if dp.Spec.GetAction() != securityapi.AuthorizationPolicy_DENY {
			bad("AuthorizationPolicy %s: action %s, want DENY", dp.Name, dp.Spec.GetAction())
		}
		if src, ok := onlySource(dp); !ok || !proto.Equal(src, &securityapi.Source{NotPrincipals: []string{uiPrincipal}}) {
			bad("AuthorizationPolicy %s: want one rule denying notPrincipals [%s], with no operation or condition (it must hold on every port and path); only the UI may call the API", dp.Name, uiPrincipal)
		}
	}

	up, ok := b.AuthorizationPolicies[UIPolicy]
	if !ok {
		bad("no AuthorizationPolicy %s", UIPolicy)
	} else {
		sel := up.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 || !selects(sel, ui.podLabels) || selects(sel, api.podLabels) {
			bad("AuthorizationPolicy %s: selector %v must select the UI's pods %v and not the API's", up.Name, sel, ui.podLabels)
		}
		gateway, external := false, false
		for _, r := range up.Spec.GetRules() {
			for _, f := range r.GetFrom() {
				if slices.Contains(f.GetSource().GetPrincipals(), td+strings.TrimPrefix(IngressGatewaySA, DefaultTrustDomain)) {
					gateway = true
				}
				if slices.Contains(f.GetSource().GetNotPrincipals(), "*") {
					external = true
					for _, t := range r.GetTo() {
						for _, p := range t.GetOperation().GetPorts() {
							if p != strconv.Itoa(uiHTTPPort) {
								bad("AuthorizationPolicy %s: external clients admitted on port %s, the UI listens on %d", up.Name, p, uiHTTPPort)
							}
						}
					}
				}
			}
		}
		if !gateway || !external {
			bad("AuthorizationPolicy %s: admits the ingress gateway %v, external clients %v; want both", up.Name, gateway, external)
		}
	}
	for _, pa := range b.PeerAuthentications {
		sel := pa.Spec.GetSelector().GetMatchLabels()
		if !selects(sel, ui.podLabels) {
			bad("PeerAuthentication %s: selector %v does not select the UI's pods", pa.Name, sel)
		}
		for port := range pa.Spec.GetPortLevelMtls() {
			if len(ui.containers) == 1 && !hasPort(ui.containers[0], int32(port)) {
				bad("PeerAuthentication %s: port %d is no port of the UI container", pa.Name, port)
			}
		}
	}
	return errs
}

// selects reports whether a non-empty label selector matches the labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// flagValue finds --name=value or --name value.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func hasPort(c corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

func resolvePort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

func probePath(p *corev1.Probe, port int) string {
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != port {
		return "<none>"
	}
	return p.HTTPGet.Path
}
