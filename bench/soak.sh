#!/usr/bin/env bash
# Soak test of the model server: the real serving binary on loopback with
# the small random Llama of bench/serving_bench.sh, driven for DURATION by
# bench/soak (good, bad, aborted and slow requests, trickled bodies, idle
# keep-alive connections), sampling its RSS (/proc), goroutines and open
# fds (/metrics) and established connections (/proc/net/tcp) every EVERY.
# Prints the table bench/soak writes (docs/benchmarks.md, "Soak").
#
#   bench/soak.sh                       # DURATION=30m EVERY=1m WORKERS=4
#   DURATION=2m EVERY=10s bench/soak.sh # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30m}
EVERY=${EVERY:-1m}
WORKERS=${WORKERS:-4}
THREADS=${THREADS:-1}
set -a; . .kfllm/env; set +a
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/serving" ./serving
go build -o "$work/soak" ./bench/soak
go test -c -o "$work/engine.test" ./internal/engine
"$work/engine.test" -test.run '^TestWriteServingBenchModel$' -serving-bench-dir "$work/model" -serving-bench-shape small >/dev/null

port=$((20000 + RANDOM % 20000))
OMP_NUM_THREADS=$THREADS "$work/serving" --model-name llm --model-dir "$work/model" --http-port "$port" \
  --threads "$THREADS" --max-batch 8 --queue-size 64 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
echo "soak: serving pid $server_pid on 127.0.0.1:$port for $DURATION" >&2
rc=0
"$work/soak" -url "http://127.0.0.1:$port" -model llm -pid "$server_pid" -d "$DURATION" -every "$EVERY" -c "$WORKERS" || rc=$?
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
echo "soak: server log lines by level: $(grep -o '"level":"[A-Z]*"' "$work/server.log" | sort | uniq -c | tr '\n' ' ')" >&2
grep '"level":"ERROR"' "$work/server.log" | head -5 >&2 || true
exit $rc
