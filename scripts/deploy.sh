#!/usr/bin/env bash
# deploy.sh api-deploy|ui-deploy|undeploy|render BASE [DIR]
#
# Deploys kfllm's kustomize bases (manifests/api, manifests/ui) into
# $NAMESPACE with `kubectl apply -k`, through an overlay it writes first
# (render): the namespace (and the principals in the Istio policies, which
# name it and the mesh's trust domain), the images ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG}, and for
# the API the model, MODEL_ID (or HF_REPO). Applying again changes nothing
# that did not change; undeploy deletes what the two bases create (not the
# secrets).
#
# Environment: NAMESPACE (default kubeflow-user-example-com), TRUST_DOMAIN
# (the mesh's trust domain, meshConfig.trustDomain; default cluster.local,
# which Istio also reads as "this mesh's trust domain"), IMAGE_REGISTRY
# (default ghcr.io/kfllm), IMAGE_TAG (default dev), MODEL_ID or HF_REPO
# (api-deploy: the Hub repo the pipeline uploaded, OWNER/NAME, or
# OWNER/NAME@REV for one revision: the commit_sha a run outputs),
# LORA_ADAPTERS (api-deploy, optional: more LoRA adapters served on the same
# base, NAME=OWNER/NAME[@REV] items joined by commas; each NAME becomes a
# model on every route, docs/design.md §5), KUBECTL
# (default kubectl), KFLLM_DEPLOY_DIR (where overlays go, default
# .kfllm/deploy), WAIT (default 10m; 0 skips waiting).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAMESPACE="${NAMESPACE:-kubeflow-user-example-com}"
TRUST_DOMAIN="${TRUST_DOMAIN:-cluster.local}"
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/kfllm}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
MODEL_ID="${MODEL_ID:-${HF_REPO:-}}"
LORA_ADAPTERS="${LORA_ADAPTERS:-}"
KUBECTL="${KUBECTL:-kubectl}"
DEPLOY_DIR="${KFLLM_DEPLOY_DIR:-$ROOT/.kfllm/deploy}"
WAIT="${WAIT:-10m}"
# The image names the bases carry; the overlay maps them to IMAGE_REGISTRY.
BASE_REGISTRY=ghcr.io/kfllm
# The principals the bases' policies carry; the overlay rewrites them for
# TRUST_DOMAIN and NAMESPACE (a test op first, so that a base that moved them
# fails the render instead of leaving the old value).
BASE_UI_PRINCIPAL=cluster.local/ns/kubeflow-user-example-com/sa/llm-ui
BASE_GATEWAY_PRINCIPAL=cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
# The base's MODEL_NAME (manifests/api/configmap.yaml): no adapter may take it.
BASE_MODEL_NAME=llm-api
HUB_REF_RE='^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._/-]*)?$'

say() { echo "deploy: $*" >&2; }
die() { say "$*"; exit "${2:-2}"; }

check_names() {
	[[ "$NAMESPACE" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "NAMESPACE=$NAMESPACE is not a Kubernetes namespace name"
	[[ "$TRUST_DOMAIN" =~ ^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$ ]] ||
		die "TRUST_DOMAIN=$TRUST_DOMAIN is not a trust domain (the mesh's meshConfig.trustDomain, e.g. cluster.local)"
	[[ "$IMAGE_REGISTRY" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$ ]] ||
		die "IMAGE_REGISTRY=$IMAGE_REGISTRY is not a registry/repository prefix (e.g. ghcr.io/you)"
	[[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG=$IMAGE_TAG is not a valid image tag"
}

check_model() {
	[[ -n "$MODEL_ID" ]] || die "MODEL_ID (or HF_REPO) is not set: export the Hugging Face repo the pipeline uploaded the model to, as OWNER/NAME"
	[[ "$MODEL_ID" =~ $HUB_REF_RE ]] ||
		die "MODEL_ID=$MODEL_ID is not a Hub repo id OWNER/NAME[@REV] (REV: a commit sha, branch or tag)"
}

trim() { # trim S: S without leading and trailing blanks
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	echo "${s%"${s##*[![:space:]]}"}"
}

# check_adapters: LORA_ADAPTERS as serving reads it (docs/design.md §5:
# NAME=REF items joined by commas, blanks and empty items ignored), each name
# fit for a route, given once and not the base's; each REF a Hub repo (the
# pod mounts no adapter directories). Rewrites LORA_ADAPTERS in that
# canonical form.
check_adapters() {
	local items=() out=() seen=" " it name ref
	IFS=, read -r -a items <<<"$LORA_ADAPTERS"
	for it in ${items[@]+"${items[@]}"}; do
		it=$(trim "$it")
		[[ -n $it ]] || continue
		name=$(trim "${it%%=*}")
		ref=$(trim "${it#*=}")
		[[ $it == *=* && -n $name && -n $ref ]] || die "LORA_ADAPTERS item \"$it\": want NAME=OWNER/NAME[@REV]"
		[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
			die "LORA_ADAPTERS item \"$it\": the name may hold only letters, digits, '.', '_' and '-' (it is a route segment)"
		[[ $name != "$BASE_MODEL_NAME" ]] || die "LORA_ADAPTERS item \"$it\": $name is the base model's name"
		[[ $seen != *" $name "* ]] || die "LORA_ADAPTERS item \"$it\": the name $name is given twice"
		[[ $ref =~ $HUB_REF_RE ]] || die "LORA_ADAPTERS item \"$it\": $ref is not a Hub repo id OWNER/NAME[@REV]"
		seen+="$name "
		out+=("$name=$ref")
	done
	LORA_ADAPTERS=$(IFS=,; echo "${out[*]}")
}

# relpath TARGET FROM: TARGET relative to FROM (kustomize refuses absolute
# paths in resources). GNU realpath, else python3.
relpath() {
	realpath --relative-to="$2" "$1" 2>/dev/null ||
		python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "$2" 2>/dev/null ||
		die "cannot compute a relative path (need GNU realpath or python3)"
}

# principal_patch POLICY FIELD BASE NEW: a kustomize patch that replaces the
# first principal of the AuthorizationPolicy's first source (FIELD principals
# or notPrincipals), after testing that the base still has BASE there, so a
# base that moves it fails the render instead of keeping a stale identity.
principal_patch() {
	cat <<YAML
  - target:
      kind: AuthorizationPolicy
      name: $1
    patch: |-
      - op: test
        path: /spec/rules/0/from/0/source/$2/0
        value: "$3"
      - op: replace
        path: /spec/rules/0/from/0/source/$2/0
        value: "$4"
YAML
}

# render BASE: write the overlay for manifests/BASE and print its directory.
render() {
	local base=$1 dir rel images
	case $base in
	api) images="serving" ;;
	ui) images="ui" ;;
	*) die "render: unknown base $base (want api or ui)" ;;
	esac
	check_names
	if [[ $base == api ]]; then
		check_model
		check_adapters
	fi
	dir="$DEPLOY_DIR/$base"
	mkdir -p "$dir"
	rel=$(relpath "$ROOT/manifests/$base" "$dir")
	{
		echo "# generated by scripts/deploy.sh; do not edit (rerun make ${base}-deploy)"
		echo "apiVersion: kustomize.config.k8s.io/v1beta1"
		echo "kind: Kustomization"
		echo "namespace: $NAMESPACE"
		echo "resources:"
		echo "  - $rel"
		echo "images:"
		local c
		for c in $images; do
			echo "  - name: $BASE_REGISTRY/kfllm-$c"
			echo "    newName: $IMAGE_REGISTRY/kfllm-$c"
			echo "    newTag: \"$IMAGE_TAG\""
		done
		local ui_principal="$TRUST_DOMAIN/ns/$NAMESPACE/sa/llm-ui"
		echo "patches:"
		if [[ $base == api ]]; then
			cat <<YAML
  - target:
      kind: ConfigMap
      name: llm-api-config
    patch: |-
      - op: replace
        path: /data/MODEL_ID
        value: "$MODEL_ID"
      - op: replace
        path: /data/LORA_ADAPTERS
        value: "$LORA_ADAPTERS"
YAML
			principal_patch llm-api-allow-ui principals "$BASE_UI_PRINCIPAL" "$ui_principal"
			principal_patch llm-api-deny-others notPrincipals "$BASE_UI_PRINCIPAL" "$ui_principal"
		else
			principal_patch llm-ui-allow-external principals "$BASE_GATEWAY_PRINCIPAL" \
				"$TRUST_DOMAIN/ns/istio-system/sa/istio-ingressgateway-service-account"
		fi
	} >"$dir/kustomization.yaml.tmp"
	mv "$dir/kustomization.yaml.tmp" "$dir/kustomization.yaml"
	echo "$dir"
}

need_kubectl() {
	command -v "$KUBECTL" >/dev/null 2>&1 || die "$KUBECTL not found; install kubectl (https://kubernetes.io/docs/tasks/tools/) and point it at the cluster" 127
	"$KUBECTL" version --request-timeout=10s >/dev/null 2>&1 ||
		die "cannot reach the cluster with $KUBECTL (check KUBECONFIG and 'kubectl config current-context')" 1
	"$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1 ||
		die "namespace $NAMESPACE does not exist; create the Kubeflow profile (or set NAMESPACE)" 1
}

need_crd() { # crd what
	"$KUBECTL" get crd "$1" >/dev/null 2>&1 || die "the cluster has no $1: install $2 first" 1
}

need_secret() { # name hint
	"$KUBECTL" -n "$NAMESPACE" get secret "$1" >/dev/null 2>&1 || die "secret $1 is missing in $NAMESPACE: $2" 1
}

api_deploy() {
	check_names
	check_model
	check_adapters
	need_kubectl
	need_crd inferenceservices.serving.kserve.io "KServe (v0.11 or later)"
	need_crd authorizationpolicies.security.istio.io "Istio"
	need_secret hf-secret "run HF_TOKEN=... make create-secret"
	"$KUBECTL" -n "$NAMESPACE" get secret langsmith-secret >/dev/null 2>&1 ||
		say "note: no langsmith-secret in $NAMESPACE, so answers are not traced (LANGCHAIN_API_KEY=... make create-secret adds it)"
	local dir
	dir=$(render api)
	"$KUBECTL" apply -k "$dir"
	if [[ "$WAIT" != 0 ]]; then
		say "waiting up to $WAIT for InferenceService llm-api to be ready (first start downloads $MODEL_ID)"
		"$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready inferenceservice/llm-api --timeout="$WAIT" ||
			die "llm-api is not ready yet; see: $KUBECTL -n $NAMESPACE describe inferenceservice llm-api; $KUBECTL -n $NAMESPACE logs -l serving.kserve.io/inferenceservice=llm-api -c kserve-container" 1
	fi
	say "llm-api deployed in $NAMESPACE (model $MODEL_ID${LORA_ADAPTERS:+, adapters $LORA_ADAPTERS}, image $IMAGE_REGISTRY/kfllm-serving:$IMAGE_TAG)"
}

ui_deploy() {
	check_names
	need_kubectl
	need_crd authorizationpolicies.security.istio.io "Istio"
	"$KUBECTL" -n "$NAMESPACE" get inferenceservice llm-api >/dev/null 2>&1 ||
		say "note: no InferenceService llm-api in $NAMESPACE yet (make api-deploy); the UI will show the API as unavailable"
	local dir ip
	dir=$(render ui)
	"$KUBECTL" apply -k "$dir"
	if [[ "$WAIT" != 0 ]]; then
		"$KUBECTL" -n "$NAMESPACE" rollout status deployment/llm-ui --timeout="$WAIT"
	fi
	ip=$("$KUBECTL" get svc llm-ui -n "$NAMESPACE" -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
	if [[ -z "$ip" ]]; then # some load balancers (AWS ELB) publish a host name instead
		ip=$("$KUBECTL" get svc llm-ui -n "$NAMESPACE" -o jsonpath='{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
	fi
	echo
	echo "The UI is served by the LoadBalancer Service llm-ui. Its external address:"
	echo "  kubectl get svc llm-ui -n $NAMESPACE -o jsonpath='{.status.loadBalancer.ingress[0].ip}'"
	if [[ -n "$ip" ]]; then
		echo "Open http://$ip/"
	else
		echo "(no address yet: the load balancer may still be provisioning; without one, use"
		echo "  kubectl -n $NAMESPACE port-forward svc/llm-ui 8081:80   and open http://localhost:8081/)"
	fi
}

undeploy() {
	check_names
	need_kubectl
	local base dir
	for base in ui api; do
		if [[ $base == api && -z "$MODEL_ID" ]]; then MODEL_ID=placeholder/for-delete; fi
		dir=$(render "$base")
		"$KUBECTL" delete -k "$dir" --ignore-not-found
	done
	say "removed llm-ui and llm-api from $NAMESPACE (secrets hf-secret and langsmith-secret are kept)"
}

case "${1:-}" in
api-deploy) api_deploy ;;
ui-deploy) ui_deploy ;;
undeploy) undeploy ;;
render)
	[[ $# -ge 2 ]] || die "usage: $0 render api|ui"
	render "$2"
	;;
*) die "usage: $0 api-deploy|ui-deploy|undeploy|render api|ui" ;;
esac
