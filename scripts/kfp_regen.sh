#!/usr/bin/env bash
# Regenerate the pipeline fixtures in internal/kfp/testdata after changing the
# pipeline definition (internal/kfp/finetune), the executor output
# (internal/kfp/executor) or scripts/kfp_golden.py:
#   kfp_sdk_golden.yaml, kfp_sdk_golden_gpu.yaml, kfp_sdk_golden_claim.yaml
#                           the same pipeline compiled by the KFP Python SDK
#                           with kfp-kubernetes (--gpu: the accelerator,
#                           node_selector and tolerations parameters default
#                           to a tainted L4 pool; --claim: an existing claim)
#   kfllm-finetune.yaml, kfllm-finetune-gpu.yaml
#                           ours (pipeline compile), the goldens of go test
#   workers_pytorchjob.json, workers_trainjob.json
#                           the jobs finetune launches with workers=2 (GPU
#                           variant), which manifests/validate decodes into
#                           the operators' types
#   internal/kfp/executor/testdata/*.json
#                           finetune's executor output, upload's output parameter files
#   kfp_load_check.json     the KFP SDK loading ours and compiling a pipeline with it
#   kfp_backend_check.json, kfp_backend_check_gpu.json
#                           the KFP API server's, driver's and launcher's code
#                           (backend of 2023-12, the newest the Go proxy
#                           serves that builds: docs/design.md §10) reading
#                           ours: the YAML and GPU run parameters compiled to
#                           an Argo Workflow, each task's Kubernetes config,
#                           the executor outputs
# Development only. Python: VENV (default ~/.cache/kfllm/venv-kfp) with
# scripts/kfp_requirements.txt; the backend check downloads its own Go module
# graph (Argo, Kubernetes libraries) on first use and builds for a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-$HOME/.cache/kfllm/venv-kfp}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r scripts/kfp_requirements.txt
td=internal/kfp/testdata
eo=internal/kfp/executor/testdata

"$VENV/bin/python" scripts/kfp_golden.py -o "$td/kfp_sdk_golden.yaml"
"$VENV/bin/python" scripts/kfp_golden.py --gpu -o "$td/kfp_sdk_golden_gpu.yaml"
"$VENV/bin/python" scripts/kfp_golden.py --claim kfllm-checkpoints -o "$td/kfp_sdk_golden_claim.yaml"
go test ./internal/kfp/finetune -run 'TestGolden$|TestWorkersCompileIntoJobs$' -update >/dev/null
go test ./internal/kfp/executor -update >/dev/null
"$VENV/bin/python" scripts/kfp_load_check.py "$td/kfllm-finetune.yaml" -o "$td/kfp_load_check.json" >/dev/null
backend() { # YAML OUT
	(cd scripts/kfp_backend_check && go run . "../../$1" "../../$eo/finetune.json" "../../$eo/upload") >"$2.tmp"
	mv "$2.tmp" "$2"
}
backend "$td/kfllm-finetune.yaml" "$td/kfp_backend_check.json"
backend "$td/kfllm-finetune-gpu.yaml" "$td/kfp_backend_check_gpu.json"
go test -count=1 ./internal/kfp/...
