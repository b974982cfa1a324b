#!/usr/bin/env python3
"""Checks a Token shards artifact (tokenize's output) from Python.

For each directory given:
  - safetensors.numpy.load_file reads train.safetensors and eval.safetensors;
    input_ids, labels and attention_mask are int32 of one shape [N, L];
  - padding is right-sided: the mask is 1s then 0s, labels are -100 on
    padding, input_ids there are metadata.json's pad_id;
  - labels are -100 on a prefix (the prompt) and equal input_ids after it,
    ending with EOS (task qa);
  - transformers.AutoTokenizer loads tokenizer/, and for task qa,
    encode(decode(row)) with the tokenizer's special tokens, plus EOS, gives
    the row's ids back (the ids are what transformers would feed the model).
Prints one line per directory and exits 1 on the first failure.

Usage: tokenizer_shards_check.py SHARDS_DIR...
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def check(d: Path) -> str:
    meta = json.loads((d / "metadata.json").read_text())
    pad, eos = meta["tokenizer"]["pad_id"], meta["tokenizer"]["eos_id"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    rows = 0
    for name in ("train.safetensors", "eval.safetensors"):
        t = load_file(str(d / name))
        ids, labels, mask = t["input_ids"], t["labels"], t["attention_mask"]
        assert ids.dtype == labels.dtype == mask.dtype == np.int32, (ids.dtype, labels.dtype, mask.dtype)
        assert ids.shape == labels.shape == mask.shape and ids.ndim == 2, (ids.shape, labels.shape, mask.shape)
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            assert (mask[r, :n] == 1).all() and (mask[r, n:] == 0).all(), f"{name} row {r}: mask not right-padded"
            assert (labels[r, n:] == -100).all() and (ids[r, n:] == pad).all(), f"{name} row {r}: padding"
            if meta["task"] == "qa":
                first = int(np.argmax(labels[r, :n] != -100))
                assert first > 0 and (labels[r, first:n] == ids[r, first:n]).all(), f"{name} row {r}: labels"
                assert ids[r, n - 1] == eos, f"{name} row {r}: no EOS"
                text = tok.decode(ids[r, : n - 1].tolist(), skip_special_tokens=True)
                again = tok(text, add_special_tokens=True)["input_ids"] + [eos]
                assert again == ids[r, :n].tolist(), f"{name} row {r}: transformers re-encodes {text!r} to {again}, row has {ids[r, :n].tolist()}"
            rows += 1
    return f"{d}: ok ({rows} rows; {type(tok).__name__}; load_file int32 {ids.shape[1]} columns)"


def main() -> int:
    for a in sys.argv[1:]:
        try:
            print(check(Path(a)))
        except AssertionError as e:
            print(f"{a}: FAIL {e}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
