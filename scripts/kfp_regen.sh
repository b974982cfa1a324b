#!/usr/bin/env bash
# Regenerate the pipeline fixtures in internal/kfp/testdata after changing the
# pipeline definition (internal/kfp/finetune) or scripts/kfp_golden.py:
#   kfp_sdk_golden.yaml     the same pipeline compiled by the KFP Python SDK
#   kfllm-finetune.yaml     ours (pipeline compile), the golden of go test
#   kfp_load_check.json     the KFP SDK loading ours and compiling a pipeline with it
#   kfp_backend_check.json  the KFP API server's code (2023-12) parsing ours
#                           and compiling it to an Argo Workflow
# Development only. Python: VENV (default ~/.cache/kfllm/venv-kfp) with
# scripts/kfp_requirements.txt; the backend check downloads its own Go module
# graph (Argo, Kubernetes libraries) on first use and builds for a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-$HOME/.cache/kfllm/venv-kfp}"
td=internal/kfp/testdata

"$VENV/bin/python" scripts/kfp_golden.py -o "$td/kfp_sdk_golden.yaml"
go test ./internal/kfp/finetune -run 'TestGolden$' -update >/dev/null
"$VENV/bin/python" scripts/kfp_load_check.py "$td/kfllm-finetune.yaml" -o "$td/kfp_load_check.json" >/dev/null
(cd scripts/kfp_backend_check && go run . "../../$td/kfllm-finetune.yaml") >"$td/kfp_backend_check.json.tmp"
mv "$td/kfp_backend_check.json.tmp" "$td/kfp_backend_check.json"
go test -count=1 ./internal/kfp/...
