#!/usr/bin/env bash
# Wall time of `pipeline compile` against the KFP Python SDK compiling the
# same pipeline (scripts/kfp_golden.py: interpreter start and `import kfp`
# included, as a user pays them), N runs each, median and min in ms.
#
#   bench/pipeline_compile.sh [N]      (VENV=/root/.cache/kfllm/venv-kfp by default)
# Requirements for the SDK side: scripts/kfp_requirements.txt.
set -euo pipefail
N="${1:-15}"
VENV="${VENV:-$HOME/.cache/kfllm/venv-kfp}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/pipeline" ./pipeline

# time_ms CMD...: run CMD N times (after one warm-up), print "median min" in ms.
time_ms() {
	"$@" >/dev/null 2>&1
	local ts=()
	for _ in $(seq "$N"); do
		local s e
		s=$(date +%s%N)
		"$@" >/dev/null 2>&1
		e=$(date +%s%N)
		ts+=($(((e - s) / 1000)))
	done
	printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR+1)/2)]/1000, a[1]/1000}'
}

read -r go_med go_min < <(time_ms "$tmp/pipeline" compile -o "$tmp/go.yaml")
read -r py_med py_min < <(time_ms "$VENV/bin/python" scripts/kfp_golden.py -o "$tmp/py.yaml")
# In process, import excluded: the SDK's compile alone, and Go's (go test -bench).
py_inproc="$(cd scripts && "$VENV/bin/python" -c '
import tempfile, timeit, os, kfp_golden
from kfp import compiler
d = tempfile.mkdtemp()
f = lambda: compiler.Compiler().compile(kfp_golden.kfllm_finetune, package_path=os.path.join(d, "p.yaml"))
f()
print("%.2f" % (min(timeit.repeat(f, number=5, repeat=5)) / 5 * 1000))')"
go_inproc="$(go test -run '^$' -bench BenchmarkCompile -benchtime 200x ./internal/kfp/finetune/ | awk '/^BenchmarkCompile/ {printf "%.3f", $3 / 1e6}')"
kfp_version="$("$VENV/bin/python" -c 'import kfp; print(kfp.__version__)')"

echo "| compiler | median ms | min ms |"
echo "|---|---|---|"
echo "| pipeline compile (Go) | $go_med | $go_min |"
echo "| KFP SDK $kfp_version (python, import included) | $py_med | $py_min |"
echo "| in process, import excluded: Go | $go_inproc | |"
echo "| in process, import excluded: KFP SDK | $py_inproc | |"
awk -v g="$go_med" -v p="$py_med" 'BEGIN {printf "\nratio (SDK / Go, medians): %.1fx  (N=%d, %s)\n", p / g, '"$N"', "'"$(nproc)"' cores"}'
