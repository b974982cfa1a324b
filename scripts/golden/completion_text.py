#!/usr/bin/env python3
"""Writes internal/server/testdata/completion_text.json: the text a completion
carries for generated token ids, as transformers gives it.

For each test tokenizer `make setup` fetches into $KFLLM_TOKENIZERS (gpt2,
llama2, llama3, qwen3), the prompt is encoded with add_special_tokens=True
and the completion is the rest of encode(prompt + COMPLETION): the ids a model
would have generated. The expected text is what transformers' text-generation
pipeline returns with return_full_text=False:
    decode(prompt_ids + gen_ids)[len(decode(prompt_ids)):]
with skip_special_tokens=True and clean_up_tokenization_spaces=False. That
keeps the completion's leading space (" Paris"), as llama.cpp's and vLLM's
OpenAI routes do; decode(gen_ids) alone keeps it for byte-level tokenizers
and loses it where the decoder strips a leading space (Llama 2's
SentencePiece "Strip" step), so the pipeline form is the reference.
clean_up_tokenization_spaces (" ," -> ",", which llama3's
tokenizer_config.json turns on) is not applied: llama.cpp, vLLM and TGI do not
apply it either, and it rewrites text already streamed (" ' " -> "'"). Both
decode_gen and the cleaned-up text are recorded beside it for reference.

Run: /root/.cache/kfllm/venv-peft/bin/python scripts/golden/completion_text.py
(transformers 4.51.3, tokenizers 0.21; nothing is downloaded).
"""
import json
import os
import sys

from transformers import AutoTokenizer, GPT2TokenizerFast

PROMPT = "The capital of France is"
COMPLETION = " Paris. It isn't far , you know: 42 km\n\nç'est ça"

base = os.environ.get("KFLLM_TOKENIZERS") or sys.exit("KFLLM_TOKENIZERS is not set: run make setup")
out = {"prompt": PROMPT, "completion": COMPLETION, "tokenizers": {}}
for name in ["gpt2", "llama2", "llama3", "qwen3"]:
    d = os.path.join(base, name)
    if name == "gpt2":
        tok = GPT2TokenizerFast(vocab_file=os.path.join(d, "encoder.json"), merges_file=os.path.join(d, "vocab.bpe"))
    else:
        tok = AutoTokenizer.from_pretrained(d)
    p = tok(PROMPT, add_special_tokens=True)["input_ids"]
    full = tok(PROMPT + COMPLETION, add_special_tokens=True)["input_ids"]
    if full[: len(p)] != p:
        sys.exit(f"{name}: the prompt's ids are not a prefix of the whole text's")
    gen = full[len(p):]

    def dec(ids, cleanup):
        return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=cleanup)

    out["tokenizers"][name] = {
        "prompt_ids": p,
        "gen_ids": gen,
        "text": dec(full, False)[len(dec(p, False)):],
        "decode_gen": dec(gen, False),
        "text_cleaned_up": dec(full, True)[len(dec(p, True)):],
    }
path = os.path.join(os.path.dirname(__file__), "..", "..", "internal", "server", "testdata", "completion_text.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(path)
