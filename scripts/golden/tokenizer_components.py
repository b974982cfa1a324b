#!/usr/bin/env python3
"""Writes internal/tokenizer/testdata/golden/components.json: what the Python
`tokenizers` library's individual components return, for the parts of the Go
package that the four test tokenizers do not exercise (Split behaviours other
than Isolated, invert, String patterns, normalizers other than NFC / Prepend /
Replace, ByteLevel with add_prefix_space, Digits as SmolLM2's tokenizer has it).

Run: /root/.cache/kfllm/venv-ref/bin/python scripts/golden/tokenizer_components.py
"""
import json
import os
import sys
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer_parity import load  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ["the-final--countdown", "a  b\tc ", "x12y345z", "--", "", "né-è 東京-😀", "  leading and trailing  "]


def main() -> None:
    splits = []
    for pat, is_regex in [("-", False), (" ", False), (r"\d+", True), (r"\s+", True), (r"-+", True)]:
        for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
            for invert in [False, True]:
                p = Regex(pat) if is_regex else pat
                pt = pre_tokenizers.Split(p, behavior, invert=invert)
                for s in INPUTS:
                    splits.append({
                        "pattern": {"Regex" if is_regex else "String": pat},
                        "behavior": "".join(w.capitalize() for w in behavior.split("_")),
                        "invert": invert, "input": s,
                        "pieces": [t for t, _ in pt.pre_tokenize_str(s)],
                    })
    bytelevel = []
    for add_prefix in [False, True]:
        for use_regex in [False, True]:
            pt = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix, use_regex=use_regex)
            for s in INPUTS:
                bytelevel.append({"add_prefix_space": add_prefix, "use_regex": use_regex, "input": s,
                                  "pieces": [t for t, _ in pt.pre_tokenize_str(s)]})
    digits = []
    for individual in [False, True]:
        pt = pre_tokenizers.Digits(individual_digits=individual)
        for s in INPUTS + ["2019 and 1,234.5", "٣٤ ½ x² Ⅻ ⑦", "9"]:
            digits.append({"individual_digits": individual, "input": s,
                           "pieces": [t for t, _ in pt.pre_tokenize_str(s)]})
    norms = []
    cases = [
        ({"type": "NFC"}, normalizers.NFC()),
        ({"type": "NFD"}, normalizers.NFD()),
        ({"type": "NFKC"}, normalizers.NFKC()),
        ({"type": "NFKD"}, normalizers.NFKD()),
        ({"type": "Lowercase"}, normalizers.Lowercase()),
        ({"type": "Strip", "strip_left": True, "strip_right": True}, normalizers.Strip(True, True)),
        ({"type": "Strip", "strip_left": False, "strip_right": True}, normalizers.Strip(False, True)),
        ({"type": "Prepend", "prepend": "▁"}, normalizers.Prepend("▁")),
        ({"type": "Replace", "pattern": {"String": " "}, "content": "▁"}, normalizers.Replace(" ", "▁")),
        ({"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": "$1 "}, normalizers.Replace(Regex(r"\s+"), "$1 ")),
    ]
    texts = ["Café ﬁne Ω Å e\u0301", "  HELLO  World\t", "İstanbul ΣΑΣ ß", "", "a  b\n\nc"]
    for cfg, n in cases:
        for s in texts:
            norms.append({"normalizer": cfg, "input": s, "output": n.normalize_str(s)})
    # Added tokens with lstrip / rstrip / single_word on the GPT-2 reference
    # (needs $KFLLM_TOKENIZERS, as tokenizer_parity.py).
    tok = load("gpt2", Path(os.environ["KFLLM_TOKENIZERS"]))
    specs = [AddedToken("<mask>", lstrip=True, special=True), AddedToken("[SEP]", rstrip=True, special=True),
             AddedToken("cat", single_word=True, normalized=False, special=False),
             AddedToken("<|x|>", normalized=False, special=False), AddedToken("<|xy|>", normalized=False, special=False)]
    tok.add_tokens(specs)
    added = {
        "tokens": [{"id": tok.token_to_id(t.content), "content": t.content, "single_word": t.single_word,
                    "lstrip": t.lstrip, "rstrip": t.rstrip, "normalized": t.normalized, "special": t.special} for t in specs],
        "cases": [{"input": s, "ids": tok.encode(s).ids} for s in [
            "I saw a   <mask> here", "a [SEP]   b", "cat concat cat. cats _cat 1cat écat", "<|xy|><|x|>",
            "no added tokens", "  <mask>[SEP]  cat", "<mask><mask>", "\t<mask>\n[SEP]\n x"]],
    }
    doc = {"tokenizers_version": tokenizers.__version__, "split": splits, "byte_level": bytelevel, "digits": digits,
           "normalizers": norms,
           "added_tokens_gpt2": added}
    out = ROOT / "internal/tokenizer/testdata/golden/components.json"
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{out.relative_to(ROOT)}: {len(splits)} split, {len(bytelevel)} byte-level, {len(norms)} normalizer cases")


if __name__ == "__main__":
    main()
