#!/usr/bin/env python3
"""Writes the "## Serving" section of docs/benchmarks.md from the files
bench/serving_bench.sh leaves in its work directory (replacing an older
"## Serving" section, leaving every other section alone).

  serving_report.py WORK_DIR THREADS ROUNDS TOKENS BENCHMARKS_MD
"""
import json
import os
import platform
import re
import sys


def main():
    work, threads, rounds, tokens, md = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    go = {}
    for line in open(os.path.join(work, "go.txt")):
        m = re.match(r"BenchmarkServingDecode/clients=(\d+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) tok/s", line)
        if m:
            c = int(m.group(1))
            go[c] = max(go.get(c, 0.0), float(m.group(2)))
    py = [json.loads(l) for l in open(os.path.join(work, "py.jsonl")) if l.strip()]
    py1 = max(p["single_tok_s"] for p in py)
    py8 = max(p["batch8_tok_s"] for p in py)
    out = ["## Serving", "",
           f"`bench/serving_bench.sh` on {platform.machine()} CPU ({os.cpu_count()} cores), {threads} libtorch threads, "
           f"fp32, a random ~30M-parameter Llama (hidden 256, 6 layers, GQA 8/4, vocab 50257 with the GPT-2 tokenizer), "
           f"{tokens} new tokens per client, greedy; best of {rounds} interleaved rounds. "
           f"Go goes through the server's scheduler and langchaingo adapter (prefill included); "
           f"transformers {py[0]['transformers']} / torch {py[0]['torch']} runs `generate()`.", "",
           "| | single stream tok/s | 8 clients aggregate tok/s | ratio |", "|---|---:|---:|---:|",
           f"| kfllm serving (continuous batching) | {go.get(1, 0):.1f} | {go.get(8, 0):.1f} | {go.get(8, 0) / max(go.get(1, 1), 1e-9):.2f}x |",
           f"| transformers generate (batch 1 / batch 8) | {py1:.1f} | {py8:.1f} | {py8 / py1:.2f}x |", ""]
    load = os.path.join(work, "load.json")
    if os.path.exists(load):
        l = json.load(open(load))
        codes = ", ".join(f"{n}×{c}" for c, n in sorted(l["codes"].items()))
        out += [f"Load test (`bench/loadtest`, HTTP V1 predict, {l['clients']} clients, {l['duration_s']:.0f} s, "
                f"max_new_tokens {l['max_new_tokens']}, max batch 8, queue 64): {l['ok']} answered ({codes}), "
                f"{l['unexpected_5xx']} unexpected 5xx, {l['transport_errors']} transport errors; "
                f"latency p50 {l['p50_ms']:.0f} ms, p90 {l['p90_ms']:.0f} ms, p99 {l['p99_ms']:.0f} ms; "
                f"{l['requests_per_s']:.2f} requests/s.", ""]
    section = "\n".join(out)
    text = open(md).read() if os.path.exists(md) else "# Benchmarks\n"
    m = re.search(r"^## Serving\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    text = text[:m.start()] + section + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + section
    open(md, "w").write(text)
    print(section)


if __name__ == "__main__":
    main()
