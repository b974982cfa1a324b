#!/usr/bin/env bash
# Tokenizer throughput: Go EncodeBatch against Python tokenizers' encode_batch
# on the same ~10 MB corpus, same machine, all cores, run back to back for each
# tokenizer (Python, Go, Python, Go) so that both see the same load.
# Prints a Markdown table with wall MB/s, CPU seconds per MB and the Go/Python
# ratios. Needs `make setup` (KFLLM_TOKENIZERS) and the reference venv.
#
# Usage: bench/tokenizer_bench.sh [MB]      (default 10)
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
testbin=$(mktemp -d)/tokenizer.test
trap 'rm -rf "$(dirname "$testbin")"' EXIT
go test -c -o "$testbin" ./internal/tokenizer >&2
echo "| tokenizer | Python MB/s | Go MB/s | wall ratio Go/Python | Python cpu-s/MB | Go cpu-s/MB | CPU ratio Python/Go |"
echo "|---|---|---|---|---|---|---|"
for name in gpt2 llama2 llama3 qwen3; do
  py_best=0 go_best=0 py_cpu=999 go_cpu=999
  for round in 1 2; do
    j=$("$PY" bench/tokenizer_bench.py "$corpus" "$name" --repeat 1)
    read -r mbps cpu < <("$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["mb_per_s"], d["cpu_s_per_mb"])' <<<"$j")
    py_best=$(awk -v a="$py_best" -v b="$mbps" 'BEGIN{print (b>a)?b:a}')
    py_cpu=$(awk -v a="$py_cpu" -v b="$cpu" 'BEGIN{print (b<a)?b:a}')
    out=$(cd internal/tokenizer && KFLLM_BENCH_CORPUS="$corpus" "$testbin" -test.run '^$' -test.bench "EncodeBatch/$name\$" -test.benchtime 1x)
    line=$(grep "^BenchmarkEncodeBatch/$name" <<<"$out")
    mbps=$(awk '{for(i=1;i<=NF;i++) if($i=="MB/s") print $(i-1)}' <<<"$line")
    cpu=$(awk '{for(i=1;i<=NF;i++) if($i=="cpu-s/MB") print $(i-1)}' <<<"$line")
    go_best=$(awk -v a="$go_best" -v b="$mbps" 'BEGIN{print (b>a)?b:a}')
    go_cpu=$(awk -v a="$go_cpu" -v b="$cpu" 'BEGIN{print (b<a)?b:a}')
  done
  awk -v n="$name" -v p="$py_best" -v g="$go_best" -v pc="$py_cpu" -v gc="$go_cpu" \
    'BEGIN{printf "| %s | %.2f | %.2f | %.2fx | %.3f | %.3f | %.2fx |\n", n, p, g, g/p, pc, gc, pc/gc}'
done
echo
echo "corpus: $corpus ($(wc -c <"$corpus") bytes of JSON lines), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
