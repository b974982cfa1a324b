#!/usr/bin/env bash
# LoRA settings against the demo's bar: fine-tunes the demo's base model
# (SmolLM2-135M-Instruct) on the demo's tokenized data with each LoRA
# setting and each seed, and prints held-out exact match and token F1 before
# and after, training time and tokens/s, one row per run (a Markdown table
# for docs/benchmarks.md, "LoRA defaults for the demo"). It runs bin/finetune
# exactly as the pipeline's finetune task does, on the shards of a demo
# run's tokenize task, so only the LoRA settings and the seed vary.
#
#   bench/lora_sweep.sh                                  # the defaults below
#   CONFIGS="r8:8:16:q_proj,v_proj:2e-4" SEEDS="1 2 3" STEPS=30 bench/lora_sweep.sh
#
# CONFIGS: space-separated NAME:R:ALPHA:TARGETS:LR (TARGETS comma-separated
# module names, or all-linear). PREP: a demo directory whose pipeline ran
# (data/, base-model/, runs/demo/tokenize/); made with a 1-step demo when
# missing. PARALLEL: runs at once (default 1). BIN: the built commands
# (default bin). Results also go to
# OUT (default out/lora_sweep.tsv).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIGS=${CONFIGS:-"r8-qv-2e-4:8:16:q_proj,v_proj:2e-4 r16-all-1e-3:16:32:all-linear:1e-3"}
SEEDS=${SEEDS:-"1 2 3"}
STEPS=${STEPS:-30}
PREP=${PREP:-out/lora_sweep/prep}
PARALLEL=${PARALLEL:-1}
OUT=${OUT:-out/lora_sweep.tsv}
BIN=${BIN:-bin}
work=out/lora_sweep/runs
mkdir -p "$work" "$(dirname "$OUT")"

shards=$PREP/runs/demo/tokenize/output_dataset
if [ ! -f "$shards/train.safetensors" ]; then
  make --no-print-directory build >&2
  echo "preparing $PREP with a 1-step demo (data, base model, shards)" >&2
  # The demo's later stages (serving the adapter) may fail on a tree whose
  # serving cannot load adapters; only the pipeline's outputs are needed.
  DEMO_EXIT=1 bin/demo -dir "$PREP" -max-steps 1 >"$work/prep.log" 2>&1 || true
  [ -f "$shards/train.safetensors" ] || { cat "$work/prep.log" >&2; exit 1; }
fi

# The base model's score is the same for every run: scored once, by the
# prep run, and the runs skip it (--qa-eval-before=false).
before=$PREP/runs/demo/finetune/output_model_dir/metrics.json

one() { # NAME R ALPHA TARGETS LR SEED
  local dir=$work/$1-s$6
  rm -rf "$dir"
  local start=$(date +%s)
  "$BIN/finetune" --input-dataset "$shards" --base-model "$PREP/base-model" --output-model-dir "$dir" \
    --qa-eval "$PREP/data/heldout.jsonl" --qa-eval-before=false --max-steps "$STEPS" --batch-size 8 --seed "$6" \
    --lora-r "$2" --lora-alpha "$3" --lora-target-modules "$4" --learning-rate "$5" >"$dir.log" 2>&1 ||
    { echo "$1 seed $6 failed:" >&2; tail -5 "$dir.log" >&2; return 1; }
  python3 - "$dir/metrics.json" "$1" "$6" "$(( $(date +%s) - start ))" "$(cut -d' ' -f1 /proc/loadavg)" "$before" <<'PY' >>"$OUT"
import json, sys
m = json.load(open(sys.argv[1])); qa = m["qa"]
# The base's score, from the prep run (every run starts from that base).
try:
    qa["before"] = json.load(open(sys.argv[6]))["qa"]["before"]
except OSError:  # the prep run has not finished
    qa["before"] = {"exact_match": float("nan"), "f1": float("nan")}
print("\t".join([sys.argv[2], sys.argv[3], f"{qa['before']['exact_match']:.2f}", f"{qa['before']['f1']:.3f}",
      f"{qa['after']['exact_match']:.2f}", f"{qa['after']['f1']:.3f}", f"{m['train_runtime_seconds']:.0f}",
      f"{m['tokens_per_second']:.0f}", sys.argv[4], sys.argv[5]]))
PY
}

jobs=()
for c in $CONFIGS; do
  IFS=: read -r name r alpha targets lr <<<"$c"
  for s in $SEEDS; do
    one "$name" "$r" "$alpha" "$targets" "$lr" "$s" &
    jobs+=($!)
    if [ "${#jobs[@]}" -ge "$PARALLEL" ]; then wait "${jobs[0]}" || true; jobs=("${jobs[@]:1}"); fi
  done
done
for j in "${jobs[@]}"; do wait "$j" || true; done

echo "| setting | seed | EM before | F1 before | EM after | F1 after | train s | tokens/s | run s | load |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$OUT"
