#!/usr/bin/env bash
# Builds components/tokenize, tokenizes a synthetic QA Records artifact (200
# records: accents, CJK, emoji, long contexts that get cut) and a task-lm one
# (--pack) with each of the four test tokenizers, then checks every output
# from Python (scripts/golden/tokenizer_shards_check.py: safetensors.numpy
# load_file, padding, labels, transformers AutoTokenizer round trip).
# The transcript goes to internal/shards/testdata/python_check.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .kfllm/env ] && { set -a; . .kfllm/env; set +a; }
: "${KFLLM_TOKENIZERS:?run make setup}"
PY=${KFLLM_PY:-${KFLLM_CACHE:-$HOME/.cache/kfllm}/venv-ref/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/tokenize" ./components/tokenize
"$PY" - "$work" <<'PY'
import json, random, sys
w = sys.argv[1]
random.seed(0)
words = ["The", "river", "Café", "naïve", "flows", "東京", "north", "🙂", "in", "1999", "spring", "\t", "  "]
for task in ("qa", "lm"):
    import os; os.makedirs(f"{w}/rec-{task}")
    with open(f"{w}/rec-{task}/data.jsonl", "w") as f:
        for i in range(200):
            ctx = " ".join(random.choice(words) for _ in range(random.randrange(5, 60)))
            rec = {"context": ctx, "question": f"What happened in year {1900+i}?", "answer": f"Answer number {i}."} if task == "qa" else {"text": ctx}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    json.dump({"source": "synthetic", "task": task}, open(f"{w}/rec-{task}/metadata.json", "w"))
PY
out=internal/shards/testdata/python_check.txt
{
  echo "# scripts/golden/tokenizer_shards_check.sh, $("$PY" -c 'import safetensors, transformers, tokenizers; print("safetensors", safetensors.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)')"
  dirs=()
  for n in gpt2 llama2 llama3 qwen3; do
    "$work/tokenize" --input-dataset "$work/rec-qa" --tokenizer "$KFLLM_TOKENIZERS/$n" --output-dataset "$work/qa-$n" --max-length 48 --eval-fraction 0.1 --seed 1 >/dev/null 2>&1
    "$work/tokenize" --input-dataset "$work/rec-lm" --tokenizer "$KFLLM_TOKENIZERS/$n" --output-dataset "$work/lm-$n" --max-length 64 --pack --eval-fraction 0.1 --seed 1 >/dev/null 2>&1
    dirs+=("$work/qa-$n" "$work/lm-$n")
  done
  "$PY" scripts/golden/tokenizer_shards_check.py "${dirs[@]}" 2>/dev/null | sed "s#$work/##"
} | tee "$out"
