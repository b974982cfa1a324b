#!/usr/bin/env python3
"""Times the Python `tokenizers` library's encode_batch on the benchmark corpus.

Usage: tokenizer_bench.py CORPUS.jsonl NAME... (names under $KFLLM_TOKENIZERS)
Prints one JSON object per tokenizer: name, bytes, texts, tokens, seconds
(best of --repeat runs), MB/s, and CPU seconds (all threads) per MB.
encode_batch runs on all cores (Rust rayon), add_special_tokens=True.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts/golden"))
from tokenizer_parity import load  # noqa: E402  (same reference construction)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("names", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    texts = [json.loads(l)["text"] for l in open(a.corpus, encoding="utf-8")]
    nbytes = sum(len(t.encode()) for t in texts)
    base = Path(os.environ["KFLLM_TOKENIZERS"])
    for name in a.names:
        tok = load(name, base)
        best, cpu, ntok = None, None, 0
        for _ in range(a.repeat):
            tok = load(name, base)  # a fresh word cache each round
            c0, t0 = time.process_time(), time.perf_counter()
            enc = tok.encode_batch(texts, add_special_tokens=True)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            ntok = sum(len(e.ids) for e in enc)
            best = dt if best is None else min(best, dt)
            cpu = dc if cpu is None else min(cpu, dc)
        print(json.dumps({"impl": "python-tokenizers", "name": name, "bytes": nbytes, "texts": len(texts),
                          "tokens": ntok, "seconds": round(best, 3), "mb_per_s": round(nbytes / best / 1e6, 3),
                          "cpu_s_per_mb": round(cpu / (nbytes / 1e6), 4),
                          "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
