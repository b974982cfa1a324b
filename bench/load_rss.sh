#!/usr/bin/env bash
# Peak resident memory of serving while it loads a model (VmHWM), beside its
# resident memory once loaded and idle (VmRSS) and the time from start to
# ready, on SmolLM2-135M-Instruct in float32: the demo's base (the Q4_1 GGUF
# make setup fetches) converted by bench/peer to float32 safetensors (538 MB),
# as bench/llamacpp_vs_kfllm.sh serves it. Each round starts serving on the
# directory, polls GET /v2/health/ready every 20 ms, reads /proc/PID/status
# and stops it.
#
# BEFORE=REV also builds serving at git revision REV (git archive, nothing in
# the work tree changes) and alternates the two builds round by round, so
# that a before/after ratio sees the same machine load.
#
#   bench/load_rss.sh                 # ROUNDS=3 THREADS=2 BEFORE= MODEL_DIR=
#   BEFORE=main bench/load_rss.sh     # this tree against main
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
BEFORE=${BEFORE:-}
set -a; . .kfllm/env; set +a
gguf=${GGUF:-$KFLLM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

builds="after"
go build -o "$work/serving-after" ./serving
if [ -n "$BEFORE" ]; then
  mkdir "$work/src"
  git archive "$BEFORE" | tar -x -C "$work/src"
  (cd "$work/src" && go build -o "$work/serving-before" ./serving)
  builds="before after"
fi
model=${MODEL_DIR:-}
if [ -z "$model" ]; then
  [ -f "$gguf" ] || { echo "no $gguf: run make setup" >&2; exit 1; }
  go build -o "$work/peer" ./bench/peer
  "$work/peer" convert -gguf "$gguf" -out "$work/hf" >/dev/null
  model=$work/hf
fi
mb() { awk -v k="$1:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }

printf 'build\tround\tready_s\tVmHWM_MB\tVmRSS_MB\n' | tee "$work/results.tsv"
for r in $(seq "$ROUNDS"); do
  for b in $builds; do
    port=$((20000 + RANDOM % 20000))
    start=$(date +%s.%N)
    OMP_NUM_THREADS=$THREADS "$work/serving-$b" --model-name llm --model-dir "$model" --http-port "$port" \
      --threads "$THREADS" 2>"$work/serving.log" &
    pid=$!
    ready=
    for _ in $(seq 15000); do
      if curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then ready=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.02
    done
    [ -n "$ready" ] || { tail "$work/serving.log" >&2; exit 1; }
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%s\t%s\t%.2f\t%s\t%s\n' "$b" "$r" "$secs" "$(mb VmHWM)" "$(mb VmRSS)" | tee -a "$work/results.tsv"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
echo "medians:"
for b in $builds; do
  awk -F'\t' -v b="$b" 'BEGIN { n = 0 } $1 == b { t[n] = $3; h[n] = $4; s[n] = $5; n++ }
    function med(a,   i, j, x) { for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }; return a[int((n - 1) / 2)] }
    END { printf "%s\tready %.2f s\tVmHWM %d MB\tVmRSS %d MB\t(%d rounds)\n", b, med(t), med(h), med(s), n }' "$work/results.tsv"
done
