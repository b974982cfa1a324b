#!/usr/bin/env bash
# Side-by-side training benchmark: finetune (internal/train) against the
# Hugging Face Trainer on the demo's tiny Llama, batch 32 x 120 tokens,
# fp32, CPU, the same thread count; tokens/s and peak RSS (/usr/bin/time -v).
# Appends the "## Training" section to docs/benchmarks.md.
#
#   bench/train_vs_hf.sh                  # STEPS=40 ROUNDS=3 THREADS=1 RSS_STEPS=300
#   STEPS=100 ROUNDS=3 THREADS=2 bench/train_vs_hf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-40}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
PY=${PY:-${KFLLM_CACHE:-$HOME/.cache/kfllm}/venv-ref/bin/python}
OUT=${OUT:-docs/benchmarks.md}
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/finetune" ./components/finetune
"$PY" bench/train_vs_hf.py make "$work"
load=$(cut -d' ' -f1 /proc/loadavg)
for th in $THREADS; do
  for r in $(seq "$ROUNDS"); do
    echo "threads $th, round $r/$ROUNDS" >&2
    rm -rf "$work/out"
    OMP_NUM_THREADS=$th /usr/bin/time -v -o "$work/go-time.txt" "$work/finetune" \
      --input-dataset "$work/shards" --base-model "$work/base" --output-model-dir "$work/out" \
      --max-steps "$STEPS" --batch-size 32 --learning-rate 2e-3 --warmup-steps 5 --device cpu \
      --threads "$th" --log-every 10 >&2
    go_tps=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_second"])' "$work/out/metrics.json")
    go_cpu=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["train_cpu_seconds"])' "$work/out/metrics.json")
    OMP_NUM_THREADS=$th /usr/bin/time -v -o "$work/py-time.txt" "$PY" bench/train_vs_hf.py hf "$work" "$STEPS" "$th" > "$work/py.json"
    py_tps=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["tokens_per_second"])' "$work/py.json")
    py_cpu=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["train_cpu_seconds"])' "$work/py.json")
    go_rss=$(grep "Maximum resident" "$work/go-time.txt" | awk '{print $NF}')
    py_rss=$(grep "Maximum resident" "$work/py-time.txt" | awk '{print $NF}')
    echo "$th $r $go_tps $py_tps $go_rss $py_rss $go_cpu $py_cpu" | tee -a "$work/rounds.txt" >&2
  done
done
# RSS across steps: a longer run of ours, VmRSS sampled with the step
# count from its training log.
RSS_STEPS=${RSS_STEPS:-300}
rm -rf "$work/out"
"$work/finetune" --input-dataset "$work/shards" --base-model "$work/base" --output-model-dir "$work/out" \
  --max-steps "$RSS_STEPS" --batch-size 32 --learning-rate 2e-3 --device cpu --threads 1 >/dev/null 2>&1 &
pid=$!
: > "$work/rss.txt"
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
  step=$(grep -c '"loss"' "$work/.out.partial/training_log.jsonl" 2>/dev/null || true)
  [ -n "$rss" ] && [ -n "$step" ] && echo "$step $rss" >> "$work/rss.txt"
  sleep 0.5
done
wait "$pid"
"$PY" - "$work" "$STEPS" "$load" <<'PY'
import json, sys, datetime, platform
import torch, transformers
work, steps, load = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
import os
json.dump({"steps": steps, "load": load, "cpu": cpu, "ncpu": os.cpu_count(), "torch": torch.__version__,
           "transformers": transformers.__version__,
           "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")}, open(work + "/meta.json", "w"))
PY
"$PY" bench/train_vs_hf.py report "$work" "$OUT"
