#!/usr/bin/env python3
"""Writes Python tokenizers' ids for every text of a JSON-lines corpus, for the
large parity check (TestParityLargeCorpus in internal/tokenizer):
OUT_DIR/<name>.ids.jsonl, one JSON array of ids a line, encode_batch with
add_special_tokens=True, reference tokenizers built as in
scripts/golden/tokenizer_parity.py.

Usage: tokenizer_parity_large.py CORPUS.jsonl OUT_DIR NAME...
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts/golden"))
from tokenizer_parity import load  # noqa: E402


def main() -> int:
    corpus, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
    for name in sys.argv[3:]:
        tok = load(name, Path(os.environ["KFLLM_TOKENIZERS"]))
        with open(out / f"{name}.ids.jsonl", "w") as f:
            for e in tok.encode_batch(texts, add_special_tokens=True):
                f.write(json.dumps(e.ids) + "\n")
        print(f"{out}/{name}.ids.jsonl: {len(texts)} texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
