#!/usr/bin/env bash
# create-langsmith-secret: put the LangSmith settings into the Kubernetes
# secret langsmith-secret in $NAMESPACE (keys LANGCHAIN_TRACING_V2,
# LANGCHAIN_ENDPOINT, LANGCHAIN_API_KEY, LANGCHAIN_PROJECT), which the
# InferenceService llm-api reads (envFrom, optional) to trace its answers.
# Each value comes from LANGSMITH_<NAME> or else LANGCHAIN_<NAME>, as in the
# LangSmith SDK. Without an API key there is nothing to create: tracing is
# optional, so the script says so and exits 0.
# Idempotent: rendered with `kubectl create --dry-run=client` and applied.
# The API key goes to kubectl on stdin, never on a command line or in output.
#
#   LANGCHAIN_API_KEY=lsv2_... [LANGCHAIN_PROJECT=kfllm] [NAMESPACE=...] scripts/create-langsmith-secret.sh
set -euo pipefail

NAMESPACE="${NAMESPACE:-kubeflow-user-example-com}"
KUBECTL="${KUBECTL:-kubectl}"

pick() { # NAME default
	local v="LANGSMITH_$1" w="LANGCHAIN_$1"
	if [[ -n "${!v:-}" ]]; then printf '%s' "${!v}"; elif [[ -n "${!w:-}" ]]; then printf '%s' "${!w}"; else printf '%s' "$2"; fi
}

api_key=$(pick API_KEY "")
if [[ -z "$api_key" ]]; then
	echo "create-secret: langsmith-secret skipped: LANGCHAIN_API_KEY (or LANGSMITH_API_KEY) is not set, so llm-api will not trace to LangSmith" >&2
	exit 0
fi
tracing=$(pick TRACING_V2 true)
endpoint=$(pick ENDPOINT https://api.smith.langchain.com)
project=$(pick PROJECT kfllm)
case $tracing in true | false) ;; *) echo "create-secret: LANGCHAIN_TRACING_V2=$tracing: want true or false" >&2; exit 2 ;; esac
[[ "$endpoint" =~ ^https?://[^[:space:]]+$ ]] || { echo "create-secret: LANGCHAIN_ENDPOINT=$endpoint is not an http(s) URL" >&2; exit 2; }
[[ "$NAMESPACE" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || { echo "create-secret: NAMESPACE=$NAMESPACE is not a namespace name" >&2; exit 2; }
if ! command -v "$KUBECTL" >/dev/null 2>&1; then
	echo "create-secret: $KUBECTL not found; install kubectl and point it at the cluster" >&2
	exit 127
fi

printf '%s' "$api_key" |
	"$KUBECTL" create secret generic langsmith-secret \
		--namespace "$NAMESPACE" \
		--from-literal=LANGCHAIN_TRACING_V2="$tracing" \
		--from-literal=LANGCHAIN_ENDPOINT="$endpoint" \
		--from-literal=LANGCHAIN_PROJECT="$project" \
		--from-file=LANGCHAIN_API_KEY=/dev/stdin \
		--dry-run=client -o yaml |
	"$KUBECTL" apply -f -
echo "create-secret: langsmith-secret (LANGCHAIN_TRACING_V2=$tracing, LANGCHAIN_ENDPOINT=$endpoint, LANGCHAIN_PROJECT=$project, LANGCHAIN_API_KEY) applied in namespace $NAMESPACE"
