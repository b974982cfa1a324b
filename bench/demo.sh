#!/usr/bin/env bash
# The demo's own numbers: runs the whole `make demo` (DEMO_EXIT=1, default
# sizes) RUNS times from a clean output directory, run N with -seed N (new
# data, data order and held-out set each time), and writes the "## Demo"
# section of docs/benchmarks.md: held-out exact match and token F1 before and
# after fine-tuning, the duration of each stage and the total, against the
# targets (EM >= 0.9, <= 8 minutes on this 2-core machine).
#
#   bench/demo.sh            # RUNS=1
#   RUNS=3 bench/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1}
OUT=${OUT:-docs/benchmarks.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_start=$(date +%s)
make --no-print-directory build >&2
build_s=$(( $(date +%s) - build_start ))
load=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq "$RUNS"); do
  echo "demo run $r/$RUNS" >&2
  DEMO_EXIT=1 bin/demo -dir "$work/demo" -seed "$r" > "$work/run$r.log" 2>&1 || { cat "$work/run$r.log" >&2; exit 1; }
  cp "$work/demo/runs/demo/finetune/output_model_dir/metrics.json" "$work/metrics$r.json"
done
python3 - "$work" "$RUNS" "$build_s" "$load" "$OUT" <<'PY'
import json, re, sys, datetime, platform
work, runs, build_s, load, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]

def seconds(s):  # Go's time.Duration.String: 4m12.7s, 700ms, 0s
    if s.endswith("ms"):
        return float(s[:-2]) / 1000
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)([hms])", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total

rows = []
for r in range(1, runs + 1):
    log = open(f"{work}/run{r}.log").read()
    summary = log.split("==> Summary", 1)[1]
    stages = re.findall(r"^    (\S.*?)\s{2,}(\S+)$", summary.split("held-out QA", 1)[0], re.M)
    m = json.load(open(f"{work}/metrics{r}.json"))
    rows.append((dict((k, seconds(v)) for k, v in stages), m))

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
lines = ["## Demo", "",
         "`make demo` end to end (DEMO_EXIT=1, default sizes: 1,000 training records, 100 held-out records with unseen "
         "people, places, companies and sentence templates; base SmolLM2-135M-Instruct from its Q4_1 GGUF; the "
         "compiled pipeline's own defaults: a LoRA adapter, rank 16, alpha 32, on all linear layers, lr 1e-3, unmerged; "
         "30 steps of 8 examples, fp32 on the CPU; the uploaded adapter served on its base). Exact match and token F1 are SQuAD v1.1's, "
         "on every held-out record, before and after fine-tuning, as finetune's metrics.json reports them.", "",
         "| run (seed) | EM before | F1 before | EM after | F1 after | train s | pipeline | demo total | + build |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for i, (st, m) in enumerate(rows, 1):
    qa = m["qa"]
    total = st.get("total", 0)
    lines.append(f"| {i} | {qa['before']['exact_match']:.2f} | {qa['before']['f1']:.2f} | {qa['after']['exact_match']:.2f} "
                 f"| {qa['after']['f1']:.2f} | {m['train_runtime_seconds']:.0f} | {st.get('run the pipeline', 0):.0f} s "
                 f"| {total:.0f} s | {total + build_s:.0f} s |")
lines += ["", "Stages of run 1: " + ", ".join(f"{k} {v:.1f} s" for k, v in rows[0][0].items() if k != "total") + ".", "",
          "Targets: held-out exact match at least 0.9 after fine-tuning (from about 0 before; the demo fails below it), "
          "the whole demo in at most 8 minutes on this 2-core machine. `+ build` adds this run's `make build` "
          f"({build_s:.0f} s, with Go's build cache warm; a fresh clone's first build compiles gotch for about 2 more minutes).", "",
          f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu} ({__import__('os').cpu_count()} CPUs, "
          f"load average {load} at the start). Re-run: `bench/demo.sh` (RUNS).", ""]
section = "\n".join(lines)
doc = open(out).read()
start = doc.find("## Demo\n")
if start >= 0:
    end = doc.find("\n## ", start + 1)
    doc = doc[:start] + section + (doc[end + 1:] if end >= 0 else "")
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
print(section)
PY
