#!/usr/bin/env bash
# create-secret: put HF_TOKEN into the Kubernetes secret hf-secret (key
# HF_TOKEN) in $NAMESPACE, which the pipeline's fetch, finetune and upload
# tasks read through secretAsEnv. Idempotent: the secret is rendered with
# `kubectl create --dry-run=client` and applied, so rerunning updates it.
# The token goes to kubectl on stdin, never on a command line (ps) or in output.
#
#   HF_TOKEN=hf_... [NAMESPACE=kubeflow-user-example-com] scripts/create-secret.sh
set -euo pipefail

NAMESPACE="${NAMESPACE:-kubeflow-user-example-com}"
KUBECTL="${KUBECTL:-kubectl}"

if [[ -z "${HF_TOKEN:-}" ]]; then
	echo "create-secret: HF_TOKEN is not set; export a Hugging Face write token (https://huggingface.co/settings/tokens) for the repo in HF_REPO" >&2
	exit 2
fi
if ! command -v "$KUBECTL" >/dev/null 2>&1; then
	echo "create-secret: $KUBECTL not found; install kubectl and point it at the cluster" >&2
	exit 127
fi

printf '%s' "$HF_TOKEN" |
	"$KUBECTL" create secret generic hf-secret \
		--namespace "$NAMESPACE" \
		--from-file=HF_TOKEN=/dev/stdin \
		--dry-run=client -o yaml |
	"$KUBECTL" apply -f -
echo "create-secret: hf-secret (key HF_TOKEN) applied in namespace $NAMESPACE"
