#!/usr/bin/env bash
# LoRA serving benchmark: 8 concurrent clients spread over 4 adapters on one
# base (every batch mixes them) against 8 clients on one merged model (the
# base served plainly: merging changes values, not shapes), aggregate tok/s
# through the scheduler (BenchmarkServingAdapters in internal/engine).
# Rounds alternate the two setups; prints each round's ratio and the median.
#
#   bench/lora_bench.sh                   # THREADS=2 ROUNDS=3 TOKENS=64 SHAPES="small smollm2" RANK=8
#   TARGETS=q_proj,v_proj bench/lora_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-64}
SHAPES=${SHAPES:-small smollm2}
RANK=${RANK:-8}
TARGETS=${TARGETS:-q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj}
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/engine.test" ./internal/engine
for v in $SHAPES; do
  "$work/engine.test" -test.run '^TestWriteServingBenchModel$' -serving-bench-dir "$work/model-$v" -serving-bench-shape "$v" >/dev/null
  for r in $(seq "$ROUNDS"); do
    OMP_NUM_THREADS=$THREADS "$work/engine.test" -test.run '^$' -test.bench '^BenchmarkServingAdapters$' -test.benchtime 2x \
      -serving-bench-dir "$work/model-$v" -threads "$THREADS" -bench-tokens "$TOKENS" -lora-rank "$RANK" -lora-targets "$TARGETS" \
      2>/dev/null | grep '^Benchmark' >"$work/$v-$r.txt"
    get() { awk -v s="$1" -v u="$2" '$0 ~ s {for (i=1;i<=NF;i++) if ($(i+1)==u) print $i}' "$work/$v-$r.txt"; }
    m=$(get merged tok/s); a=$(get adapters=4 tok/s); mc=$(get merged tok/cpu-s); ac=$(get adapters=4 tok/cpu-s)
    echo "$v round $r: merged $m tok/s ($mc tok/cpu-s), 4 adapters $a tok/s ($ac tok/cpu-s), ratio $(awk -v a="$a" -v m="$m" 'BEGIN{printf "%.3f", a/m}') cpu-ratio $(awk -v a="$ac" -v m="$mc" 'BEGIN{printf "%.3f", a/m}')" | tee -a "$work/$v.ratios"
  done
  med() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
  echo "$v median ratio: $(awk '{print $(NF-2)}' "$work/$v.ratios" | med), median cpu-ratio: $(awk '{print $NF}' "$work/$v.ratios" | med)"
done
