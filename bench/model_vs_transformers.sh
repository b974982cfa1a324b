#!/usr/bin/env bash
# Side-by-side benchmark of internal/model against transformers' eager
# generate() on the same ~10M-parameter Llama weights, fp32, CPU, the same
# libtorch thread count; then the RSS growth over 10,000 generated tokens.
# Writes the "## Model engine" section of docs/benchmarks.md.
#
#   bench/model_vs_transformers.sh            # THREADS=1 ROUNDS=3 RSS=1
#   THREADS=2 ROUNDS=5 bench/model_vs_transformers.sh
#
# Each round runs Go then Python, interleaved, and the best round of each
# is kept, which is what survives other load on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
RSS=${RSS:-1}
PY=${PY:-${KFLLM_CACHE:-$HOME/.cache/kfllm}/venv-ref/bin/python}
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go test -c -o "$work/model.test" ./internal/model
"$work/model.test" -test.run '^TestWriteBenchModel$' -bench-model-dir "$work/model" >/dev/null
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  OMP_NUM_THREADS=$THREADS "$work/model.test" -test.run '^$' -test.bench '^Benchmark(Prefill|Decode)$' \
    -test.benchtime 5x -threads "$THREADS" | tee -a "$work/go.txt" >&2
  OMP_NUM_THREADS=$THREADS "$PY" bench/model_transformers.py "$work/model" "$THREADS" 5 | tee -a "$work/py.jsonl" >&2
done
if [ "$RSS" = 1 ]; then
  for tune in true false; do
    echo "RSS over 10,000 tokens, TuneAllocator: $tune" >&2
    OMP_NUM_THREADS=$THREADS "$work/model.test" -test.run '^$' -test.bench '^BenchmarkDecodeRSS$' \
      -test.benchtime 1x -threads "$THREADS" -tune-malloc=$tune | tee "$work/rss-$tune.txt" >&2
  done
fi
"$PY" bench/model_report.py "$work" "$THREADS" "$ROUNDS" docs/benchmarks.md
