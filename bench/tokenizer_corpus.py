#!/usr/bin/env python3
"""Writes the tokenizer benchmark corpus: ~10 MB of JSON lines, one text each.

Deterministic: the sorted .py files of this Python's standard library (real
code, comments and English docstrings), cut into texts of 40 lines, with every
25th text replaced by a line-group of the committed multilingual test corpus
(internal/tokenizer/testdata/corpus: CJK, emoji, accents, invalid UTF-8 after
replacement). Same Python version -> same bytes; the sha256 is printed.

Usage: tokenizer_corpus.py OUT.jsonl [MB]
"""
import hashlib
import json
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    out = Path(sys.argv[1])
    limit = int(float(sys.argv[2] if len(sys.argv) > 2 else 10) * 1_000_000)
    extra = []
    for p in sorted((ROOT / "internal/tokenizer/testdata/corpus").glob("*.txt")):
        extra.append(p.read_bytes().decode("utf-8", errors="replace"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    size, n = 0, 0
    h = hashlib.sha256()
    with out.open("w", encoding="utf-8") as f:
        for p in files:
            try:
                lines = p.read_text(encoding="utf-8").split("\n")
            except (UnicodeDecodeError, OSError):
                continue
            for i in range(0, len(lines), 40):
                text = "\n".join(lines[i : i + 40])
                if n % 25 == 24:
                    text = extra[(n // 25) % len(extra)]
                if not text.strip():
                    continue
                line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                f.write(line)
                h.update(line.encode())
                size += len(text.encode())
                n += 1
                if size >= limit:
                    print(f"{out}: {n} texts, {size} bytes of text, sha256 {h.hexdigest()}")
                    return 0
    print(f"{out}: {n} texts, {size} bytes of text (stdlib exhausted), sha256 {h.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
