#!/usr/bin/env bash
# run-pipeline: submit kfllm's fine-tuning pipeline to Kubeflow Pipelines.
# Compiles it to $PIPELINE_YAML when that file is missing (make
# compile-pipeline writes it), uploads it (a new version when the pipeline
# exists), and starts a run in $NAMESPACE with hf_repo=$HF_REPO.
#
#   HF_REPO=owner/name KFP_HOST=http://localhost:8888 [NAMESPACE=...] scripts/run-pipeline.sh [pipeline run flags]
#
# KFP_HOST: for a port-forward, `kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8888:80`
# and http://localhost:8888; behind the Kubeflow gateway, https://HOST/pipeline
# with KF_PIPELINES_TOKEN (or --token-file) or KF_PIPELINES_COOKIE set.
# Extra arguments go to `pipeline run` (e.g. --wait, --param epochs=3).
# finetune's GPU pool, for this run (pipeline parameters; unset: the
# compiled defaults):
#   ACCELERATOR=nvidia.com/gpu
#   NODE_SELECTOR='{"cloud.google.com/gke-accelerator": "nvidia-l4"}'   (a JSON object)
#   TOLERATIONS='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'   (a JSON array)
set -euo pipefail

NAMESPACE="${NAMESPACE:-kubeflow-user-example-com}"
PIPELINE_YAML="${PIPELINE_YAML:-out/kfllm-finetune.yaml}"
KFP_HOST="${KFP_HOST:-${KF_PIPELINES_ENDPOINT:-}}"

if [[ -z "${HF_REPO:-}" ]]; then
	echo "run-pipeline: HF_REPO is not set; export the Hugging Face repo to upload the model to, e.g. HF_REPO=you/kfllm-squad (and run make create-secret for its token)" >&2
	exit 2
fi
if [[ -z "$KFP_HOST" ]]; then
	echo "run-pipeline: KFP_HOST is not set; e.g. kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8888:80 and KFP_HOST=http://localhost:8888" >&2
	exit 2
fi

if [[ -n "${PIPELINE_BIN:-}" ]]; then
	pipeline=("$PIPELINE_BIN")
elif [[ -x bin/pipeline ]]; then
	pipeline=(bin/pipeline)
else
	pipeline=(go run ./pipeline)
fi

if [[ ! -f "$PIPELINE_YAML" ]]; then
	mkdir -p "$(dirname "$PIPELINE_YAML")"
	"${pipeline[@]}" compile -o "$PIPELINE_YAML"
	echo "run-pipeline: compiled $PIPELINE_YAML"
fi

params=(--param "hf_repo=$HF_REPO")
[[ -n "${ACCELERATOR:-}" ]] && params+=(--param "accelerator=$ACCELERATOR")
[[ -n "${NODE_SELECTOR:-}" ]] && params+=(--param "node_selector=$NODE_SELECTOR")
[[ -n "${TOLERATIONS:-}" ]] && params+=(--param "tolerations=$TOLERATIONS")
exec "${pipeline[@]}" run --host "$KFP_HOST" --namespace "$NAMESPACE" -f "$PIPELINE_YAML" "${params[@]}" "$@"
