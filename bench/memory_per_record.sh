#!/usr/bin/env bash
# Memory per record: peak RSS (GNU time's "Maximum resident set size") of
# fetch on one 100 MB record, as a single JSONL line and as a single CSV
# record, and of tokenize on one 10 MB context with --max-length 128.
# Prints a Markdown table. BIN picks the binaries to measure (a directory
# holding fetch and tokenize; default: built from this tree), so that an
# older build can be measured the same way for comparison.
#
# Usage: bench/memory_per_record.sh [MB] [CONTEXT_MB]    (default 100 10)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .kfllm/env ] && { set -a; . .kfllm/env; set +a; }
: "${KFLLM_TOKENIZERS:?run make setup}"
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 1; }
MB=${1:-100}
CTX_MB=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  BIN=$work/bin
  go build -o "$BIN/" ./components/fetch ./components/tokenize
fi
python3 - "$work" "$MB" "$CTX_MB" <<'PY'
import json, os, sys
work, mb, ctx_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
unit = "The tower is made of wrought iron and stands in Paris. "
ctx = (unit * (mb * 2**20 // len(unit) + 1))[: mb * 2**20]
small = {"context": "Paris is in France.", "question": "Where is Paris?", "answer": "France"}
with open(os.path.join(work, "big.jsonl"), "w") as f:
    f.write(json.dumps({"context": ctx, "question": "What is the tower made of?", "answer": "wrought iron"}) + "\n")
    f.write(json.dumps(small) + "\n")
with open(os.path.join(work, "big.csv"), "w") as f:
    f.write("context,question,answer\n" + ctx + ",What is the tower made of?,wrought iron\nParis is in France.,Where is Paris?,France\n")
rec = os.path.join(work, "records")
os.makedirs(rec)
with open(os.path.join(rec, "data.jsonl"), "w") as f:
    f.write(json.dumps({"context": ctx[: ctx_mb * 2**20], "question": "What is the tower made of?", "answer": "wrought iron"}) + "\n")
    f.write(json.dumps(small) + "\n")
json.dump({"source": "bench", "task": "qa"}, open(os.path.join(rec, "metadata.json"), "w"))
PY
# measure NAME CMD...: one table row with peak RSS, CPU and wall time, exit status.
measure() {
  local name=$1; shift
  local log=$work/time.log status=0
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/err.log" || status=$?
  local rss wall cpu
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$log")
  cpu=$(awk -F': ' '/User time|System time/{s+=$2} END{printf "%.1f", s}' "$log")
  echo "| $name | $((rss / 1024)) | $cpu | $wall | $status |"
}
extra=()
"$BIN/fetch" --help 2>&1 | grep -q -- --max-line-bytes && extra=(--max-line-bytes $(( (MB + 1) * 2**20 )))
echo "| run | peak RSS (MiB) | CPU s | wall | exit |"
echo "|---|---:|---:|---:|---|"
measure "fetch, one ${MB} MiB JSONL line" "$BIN/fetch" --source "$work/big.jsonl" --output-dataset "$work/o1" "${extra[@]}"
measure "fetch, one ${MB} MiB CSV record" "$BIN/fetch" --source "$work/big.csv" --output-dataset "$work/o2" "${extra[@]}"
for tok in llama2 qwen3; do
  measure "tokenize ($tok), one ${CTX_MB} MiB context, --max-length 128" \
    "$BIN/tokenize" --input-dataset "$work/records" --tokenizer "$KFLLM_TOKENIZERS/$tok" --output-dataset "$work/s-$tok" --max-length 128 --eval-fraction 0
done
