#!/usr/bin/env bash
# UI rate limiting: the real UI server (ui/server, default limits: 1 request/s
# per address, burst 10, 2 generations per address, 16 in all) on loopback in
# front of a stand-in API on loopback (3 tokens, 20 ms apart). From 127.0.0.1
# CLIENTS clients post /api/generate back to back; from 127.0.0.2 one person
# asks every 1.5 s. Prints the "## UI rate limiting" section of
# docs/benchmarks.md; WRITE=1 replaces that section in place.
#
#   bench/ui_ratelimit.sh                   # DURATION=30s CLIENTS=16
#   DURATION=10s WRITE=1 bench/ui_ratelimit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
CLIENTS=${CLIENTS:-16}
out=$(UI_BENCH_DURATION=$DURATION UI_BENCH_CLIENTS=$CLIENTS \
	go test -count=1 -run '^$' -bench RateLimitTwoAddresses -benchtime 1x -v ./ui/server)
table=$(printf '%s\n' "$out" | sed -n 's/^ *\(|.*|\)$/\1/p')
metrics=$(printf '%s\n' "$out" | sed -n 's/^ *\(kfllm_ui_[a-z_]*\({[^}]*}\)\{0,1\} [0-9.e+]*\)$/    \1/p')
[ -n "$table" ] || { printf '%s\n' "$out" >&2; echo "ui_ratelimit: no table in the benchmark's output" >&2; exit 1; }
section=$(cat <<MD
## UI rate limiting

\`bench/ui_ratelimit.sh\` (BenchmarkRateLimitTwoAddresses in ui/server): the real UI server with its default limits (token bucket of 10 per client address refilled at 1 request/s, 2 generations in flight per address, 16 in all) on loopback in front of a stand-in for the serving API on loopback that streams 3 tokens 20 ms apart. From 127.0.0.1, $CLIENTS clients post /api/generate back to back for $DURATION; from 127.0.0.2 one person asks every 1.5 s meanwhile. Latency is the whole request, stream included, as the client sees it.

$table

The flood's answers are its bucket: a burst of 10 and then 1 a second (a request refused for having 2 generations in flight has taken its token too); the person's address has a bucket of its own, so it is answered throughout, at the flood's latency (both share the 2 cores with the flood's 429s).

The UI's /metrics after the run:

$metrics

Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores shared with other jobs (load average $(cut -d' ' -f1 /proc/loadavg)). Re-run: \`bench/ui_ratelimit.sh\` (DURATION, CLIENTS; WRITE=1 writes this section).
MD
)
printf '%s\n' "$section"
if [ "${WRITE:-0}" = 1 ]; then
	SECTION="$section" python3 - docs/benchmarks.md <<'PY'
import os, re, sys
p = sys.argv[1]
doc = open(p).read()
sec = os.environ["SECTION"].rstrip() + "\n"
m = re.search(r"^## UI rate limiting\n.*?(?=^## |\Z)", doc, flags=re.S | re.M)
doc = doc[:m.start()] + sec + "\n" + doc[m.end():] if m else doc.rstrip() + "\n\n" + sec
open(p, "w").write(doc)
PY
fi
