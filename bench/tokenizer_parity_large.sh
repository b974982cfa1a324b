#!/usr/bin/env bash
# Large parity check: Go ids against Python tokenizers' on every text of the
# ~10 MB benchmark corpus (bench/tokenizer_corpus.py), for the four test
# tokenizers. Usage: bench/tokenizer_parity_large.sh [MB]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .kfllm/env ] && { set -a; . .kfllm/env; set +a; }
: "${KFLLM_TOKENIZERS:?run make setup}"
PY=${KFLLM_PY:-${KFLLM_CACHE:-$HOME/.cache/kfllm}/venv-ref/bin/python}
MB=${1:-10}
dir=${KFLLM_CACHE:-$HOME/.cache/kfllm}/bench
mkdir -p "$dir"
corpus=$dir/tokenizer_corpus_${MB}MB.jsonl
[ -s "$corpus" ] || "$PY" bench/tokenizer_corpus.py "$corpus" "$MB" >&2
ids=$(mktemp -d)
trap 'rm -rf "$ids"' EXIT
"$PY" bench/tokenizer_parity_large.py "$corpus" "$ids" gpt2 llama2 llama3 qwen3 >&2
KFLLM_PARITY_CORPUS=$corpus KFLLM_PARITY_IDS=$ids go test -count=1 -timeout 30m -run TestParityLargeCorpus -v ./internal/tokenizer | grep -E "ids identical|ids differ|^(ok|FAIL|---)"
