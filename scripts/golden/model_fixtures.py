#!/usr/bin/env python3
"""Parity fixtures for internal/model, made with Hugging Face transformers.

  model_fixtures.py make       tiny random models of each architecture, their
                               inputs, logits and greedy generations
                               -> internal/model/testdata/<case>/
  model_fixtures.py roundtrip  load the model dirs that the Go test wrote with
                               -update into testdata/roundtrip/<case>/, run
                               them in transformers on the case's inputs and
                               record the largest logit difference
                               -> testdata/roundtrip/transformers_check.json

Run with the reference venv (requirements.txt beside this file):
  /root/.cache/kfllm/venv-ref/bin/python scripts/golden/model_fixtures.py make
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "model", "testdata")
PAD, BOS, EOS = 0, 1, 2
VOCAB = 200
MAX_NEW = 12
SEQ = 7
LENGTHS = [7, 4, 2]  # prompt lengths of the padded batches


def llama(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                rms_norm_eps=1e-5, rope_theta=10000.0, initializer_range=0.2,
                bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False)
    base.update(kw)
    return LlamaConfig(**base)


CASES = {
    "llama_gqa": lambda: llama(),
    "llama_mha_tied": lambda: llama(num_key_value_heads=4, tie_word_embeddings=True, rope_theta=500000.0),
    "llama_bias": lambda: llama(attention_bias=True, mlp_bias=True, rms_norm_eps=1e-6),
    "llama3_rope": lambda: llama(hidden_size=64, intermediate_size=96, num_key_value_heads=1,
                                 max_position_embeddings=128, rope_theta=500000.0,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2": lambda: Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                 rms_norm_eps=1e-6, rope_theta=1000000.0, initializer_range=0.2,
                                 bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                 tie_word_embeddings=True, use_sliding_window=False),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                               initializer_range=0.2, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD),
}
# gpt2_noprefix is gpt2's weights saved as the original openai-community/gpt2
# checkpoint is: no "transformer." prefix, with the attn.bias mask buffers.


def batches(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (len(LENGTHS), SEQ), generator=g)
    out = {"single": (ids[:1].clone(), torch.ones(1, SEQ, dtype=torch.long))}
    left, lmask = ids.clone(), torch.zeros_like(ids)
    right, rmask = ids.clone(), torch.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        left[row, :SEQ - n] = PAD
        lmask[row, SEQ - n:] = 1
        right[row, n:] = PAD
        rmask[row, :n] = 1
    out["left"] = (left, lmask)
    out["right"] = (right, rmask)
    return out


def positions(mask):
    # As transformers' generate() does for a padded batch.
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


@torch.no_grad()
def logits_of(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits.float()


@torch.no_grad()
def greedy(model, prompts):
    t = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), t), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, t - len(p):] = torch.tensor(p)
        mask[i, t - len(p):] = 1
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW,
                         eos_token_id=EOS, pad_token_id=PAD, output_scores=True, return_dict_in_generate=True)
    gap = float("inf")
    for s in out.scores:
        top = s.float().topk(2, dim=-1).values
        gap = min(gap, float((top[:, 0] - top[:, 1]).min()))
    rows = []
    for row in out.sequences[:, t:].tolist():
        if EOS in row:
            row = row[:row.index(EOS) + 1]
        rows.append(row)
    return rows, gap


def write_case(name, model, seed):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    tensors = {}
    for key, (ids, mask) in batches(model.config.vocab_size, seed).items():
        tensors[key + ".input_ids"] = ids
        tensors[key + ".attention_mask"] = mask
        tensors[key + ".logits"] = logits_of(model, ids, mask).contiguous()
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    g = torch.Generator().manual_seed(seed + 1)
    prompts = [torch.randint(3, model.config.vocab_size, (n,), generator=g).tolist() for n in (5, 3, 8)]
    rows, gap = greedy(model, prompts)
    with open(os.path.join(d, "greedy.json"), "w") as f:
        json.dump({"prompts": prompts, "max_new_tokens": MAX_NEW, "eos_token_id": EOS, "outputs": rows,
                   "min_top2_gap": gap, "transformers": transformers.__version__, "torch": torch.__version__},
                  f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {size} bytes, greedy min top-2 gap {gap:.4f}")
    if size >= 1 << 20:
        sys.exit(f"{name} is {size} bytes, over 1 MB")
    return d


def make():
    torch.manual_seed(0)
    for i, (name, mk) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_config(mk(), torch_dtype=torch.float32).eval()
        d = write_case(name, model, 1000 + i)
        if name == "gpt2":
            make_noprefix(d, model)


def make_noprefix(src, model):
    d = os.path.join(ROOT, "gpt2_noprefix")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    sd = load_file(os.path.join(src, "model.safetensors"))
    out = {k.removeprefix("transformer."): v for k, v in sd.items()}
    n = model.config.n_positions
    for i in range(model.config.n_layer):  # the buffers old checkpoints carry; loaders ignore them
        out[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
    save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    # The fixture holds only if transformers itself reads this layout the same.
    again = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    exp = load_file(os.path.join(d, "expected.safetensors"))
    diff = (logits_of(again, exp["left.input_ids"], exp["left.attention_mask"]) - exp["left.logits"]).abs()
    diff = float((diff * exp["left.attention_mask"].unsqueeze(-1)).max())
    print(f"gpt2_noprefix: transformers reloads it with max diff {diff}")
    if diff > 1e-6:
        sys.exit("gpt2_noprefix does not reload")


def roundtrip():
    base = os.path.join(ROOT, "roundtrip")
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": {}}
    worst = 0.0
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        model, info = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, output_loading_info=True)
        model.eval()
        exp = load_file(os.path.join(ROOT, name, "expected.safetensors"))
        case = {"missing_keys": sorted(info["missing_keys"]), "unexpected_keys": sorted(info["unexpected_keys"]),
                "mismatched_keys": [str(k) for k in info["mismatched_keys"]]}
        diff = 0.0
        for key in ("single", "left", "right"):
            ids, mask = exp[key + ".input_ids"], exp[key + ".attention_mask"]
            got = logits_of(model, ids, mask)
            d_ = float(((got - exp[key + ".logits"]).abs() * mask.unsqueeze(-1)).max())
            diff = max(diff, d_)
        case["max_abs_diff"] = diff
        if case["missing_keys"] or case["unexpected_keys"] or case["mismatched_keys"]:
            diff = float("inf")  # a model that loads with holes does not round-trip
            case["max_abs_diff"] = "inf"
        worst = max(worst, diff)
        result["cases"][name] = case
        print(name, case)
    if not result["cases"]:
        sys.exit(f"no saved models under {base}: run the Go test with -update first")
    result["max_abs_diff"] = worst if worst != float("inf") else "inf"
    with open(os.path.join(base, "transformers_check.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["make", "roundtrip"])
    torch.set_num_threads(1)
    {"make": make, "roundtrip": roundtrip}[p.parse_args().step]()
