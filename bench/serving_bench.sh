#!/usr/bin/env bash
# Serving benchmark: the model server's generation through its scheduler
# (single stream, and 8 concurrent clients batched), beside transformers'
# generate() on the same weights, fp32, CPU, for random Llamas of four shapes
# (small, gpt2vocab, medium, smollm2: see writeBenchModel in internal/engine/bench_test.go);
# then a load test of the HTTP server on the first: 32 clients for 2 minutes.
# Writes the "## Serving" section of docs/benchmarks.md.
#
#   bench/serving_bench.sh                         # THREADS=1 ROUNDS=3 LOAD=2m SHAPES="small gpt2vocab medium smollm2"
#   LOAD=0 ROUNDS=1 bench/serving_bench.sh         # no load test
#
# Rounds interleave Go and Python; the report shows the round with the median
# ratio and lists every round's ratios (the machine is shared: load moves).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
SHAPES=${SHAPES:-small gpt2vocab medium smollm2}
TOKENS=${TOKENS:-128}
LOAD=${LOAD:-2m}
CLIENTS=${CLIENTS:-32}
PY=${PY:-${KFLLM_CACHE:-$HOME/.cache/kfllm}/venv-ref/bin/python}
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go test -c -o "$work/engine.test" ./internal/engine
for v in $SHAPES; do
  "$work/engine.test" -test.run '^TestWriteServingBenchModel$' -serving-bench-dir "$work/model-$v" -serving-bench-shape "$v" >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for v in $SHAPES; do
    echo "round $r/$ROUNDS, $v" >&2
    OMP_NUM_THREADS=$THREADS "$work/engine.test" -test.run '^$' -test.bench '^BenchmarkServingDecode$' -test.benchtime 2x \
      -serving-bench-dir "$work/model-$v" -threads "$THREADS" -bench-tokens "$TOKENS" 2>/dev/null | grep '^Benchmark' | tee -a "$work/go-$v.txt" >&2
    OMP_NUM_THREADS=$THREADS "$PY" bench/serving_transformers.py "$work/model-$v" "$THREADS" "$TOKENS" 2 2>/dev/null | tee -a "$work/py-$v.jsonl" >&2
  done
done

if [ "$LOAD" != 0 ]; then
  go build -o "$work/serving" ./serving
  go build -o "$work/loadtest" ./bench/loadtest
  port=$((20000 + RANDOM % 20000))
  OMP_NUM_THREADS=$THREADS "$work/serving" --model-name llm --model-dir "$work/model-${SHAPES%% *}" --http-port "$port" \
    --threads "$THREADS" --max-batch 8 --queue-size 64 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
  echo "load test: $CLIENTS clients for $LOAD" >&2
  "$work/loadtest" -url "http://127.0.0.1:$port" -model llm -c "$CLIENTS" -d "$LOAD" -max-tokens 32 \
    -json "$work/load.json" | tee "$work/load.txt" >&2 || echo "load test FAILED" >&2
  curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^kfllm_(http_requests_total|generated_tokens_total|decode_steps_total)' >"$work/metrics.txt" || true
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
fi
"$PY" bench/serving_report.py "$work" "$THREADS" "$ROUNDS" "$TOKENS" "$SHAPES" docs/benchmarks.md
