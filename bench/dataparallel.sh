#!/usr/bin/env bash
# Data-parallel fine-tuning on this machine: 1 rank × 1 thread, 1 rank ×
# 2 threads and 2 ranks × 1 thread (--nproc-per-node 2, Gloo over
# loopback), the same global batch; prints a Markdown table for
# docs/benchmarks.md ("Data-parallel fine-tuning").
#
#   bench/dataparallel.sh                 # STEPS=20 ROUNDS=3
#   STEPS=40 ROUNDS=5 ARGS="-lora-r 8" bench/dataparallel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/finetune" ./components/finetune
go build -o "$work/dataparallel" ./bench/dataparallel
# shellcheck disable=SC2086
"$work/dataparallel" -finetune "$work/finetune" -steps "${STEPS:-20}" -rounds "${ROUNDS:-3}" ${ARGS:-}
