#!/usr/bin/env python3
"""Writes the tokenizer parity fixtures: internal/tokenizer/testdata/golden/<name>.json.

For each of the four test tokenizers that `make setup` fetches into
$KFLLM_TOKENIZERS (gpt2, llama2, llama3, qwen3) and each file of
internal/tokenizer/testdata/corpus/*.txt, this records what the Python
`tokenizers` library returns for
  - every line of the file (split on "\n"; a final empty piece after the last
    newline is dropped), and
  - the whole file as one text (newlines, tabs and all):
ids = encode(text, add_special_tokens=True).ids, and
decode(ids, skip_special_tokens=True / False).

Invalid UTF-8: Python strings cannot hold invalid bytes, so the library only
ever sees text decoded with errors="replace" (one U+FFFD per maximal invalid
subpart). The Go side reads the same bytes and applies the same replacement
(tokenizer.ValidUTF8), so both tokenize the same string.

GPT-2 ships as encoder.json + vocab.bpe, not tokenizer.json. The reference
tokenizer is built the way transformers' GPT2TokenizerFast builds it:
  Tokenizer(BPE.from_file("encoder.json", "vocab.bpe"))
  pre_tokenizer = ByteLevel(add_prefix_space=False)   # use_regex=True
  decoder = decoders.ByteLevel()
  add_special_tokens(["<|endoftext|>"])               # special, not normalized
no normalizer and no post-processor that adds tokens. The Go loader builds
the same pipeline from the same two files.

Run: /root/.cache/kfllm/venv-ref/bin/python scripts/golden/tokenizer_parity.py
"""
import json
import os
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "internal/tokenizer/testdata/corpus"
GOLDEN = ROOT / "internal/tokenizer/testdata/golden"
NAMES = ["gpt2", "llama2", "llama3", "qwen3"]


def load(name: str, base: Path) -> Tokenizer:
    d = base / name
    if name == "gpt2":
        tok = Tokenizer(BPE.from_file(str(d / "encoder.json"), str(d / "vocab.bpe")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(["<|endoftext|>"])
        return tok
    return Tokenizer.from_file(str(d / "tokenizer.json"))


def cases():
    for path in sorted(CORPUS.glob("*.txt")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, line in enumerate(lines):
            yield path.name, i, line
        yield path.name, -1, text


def main() -> int:
    base = os.environ.get("KFLLM_TOKENIZERS")
    if not base:
        print("KFLLM_TOKENIZERS is not set: run make setup", file=sys.stderr)
        return 1
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        tok = load(name, Path(base))
        out = []
        for fname, line, text in cases():
            ids = tok.encode(text, add_special_tokens=True).ids
            out.append({
                "file": fname,
                "line": line,
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=True),
                "decoded_special": tok.decode(ids, skip_special_tokens=False),
            })
        doc = {"tokenizer": name, "tokenizers_version": tokenizers.__version__, "cases": out}
        dst = GOLDEN / f"{name}.json"
        dst.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        print(f"{dst.relative_to(ROOT)}: {len(out)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
