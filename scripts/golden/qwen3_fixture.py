#!/usr/bin/env python3
"""Qwen3 parity fixture for internal/model, made with Hugging Face transformers.

A tiny random Qwen3ForCausalLM (per-head q/k RMSNorm, explicit head_dim, GQA,
tied embeddings) with the real Qwen3 vocabulary, so that text tokenized with
the Qwen3 tokenizer ($KFLLM_TOKENIZERS/qwen3, which scripts/setup.sh
installs) runs through it. Weights are stored as bfloat16 to keep the
fixture small; both transformers here and the Go test compute in float32.

  -> internal/model/testdata/qwen3/{config.json, generation_config.json,
     model.safetensors, expected.safetensors, greedy.json}

expected.safetensors holds the tokenized texts (input_ids, attention_mask,
right padded), the logits transformers computes for them at a subset of the
vocabulary ("columns": the first 256 ids, the input ids and each position's
top 16), and greedy.json a greedy continuation over the full vocabulary.

  python3 -m venv /root/.cache/kfllm/venv-qwen3
  /root/.cache/kfllm/venv-qwen3/bin/pip install -r scripts/golden/qwen3_requirements.txt
  /root/.cache/kfllm/venv-qwen3/bin/python scripts/golden/qwen3_fixture.py
"""
import copy
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "model", "testdata", "qwen3")
TEXTS = ["The capital of France is Paris, and Berlin is the capital of Germany.",
         "Qwen3 normalises each head's queries and keys."]
MAX_NEW = 8


def main():
    tok = Tokenizer.from_file(os.path.join(os.environ["KFLLM_TOKENIZERS"], "qwen3", "tokenizer.json"))
    endoftext = tok.token_to_id("<|endoftext|>")
    im_end = tok.token_to_id("<|im_end|>")
    cfg = Qwen3Config(vocab_size=151936, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, initializer_range=0.2, tie_word_embeddings=True,
                      bos_token_id=endoftext, eos_token_id=im_end, pad_token_id=endoftext, torch_dtype="bfloat16")
    torch.manual_seed(3)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # transformers starts norms at 1: move them so the test sees them
                p.copy_(1 + 0.3 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).float())  # what the bfloat16 file will hold
    shutil.rmtree(ROOT, ignore_errors=True)
    # A copy: casting the model itself and back would round rope's inv_freq buffer too.
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(ROOT, safe_serialization=True)

    ids = [tok.encode(t).ids for t in TEXTS]
    t = max(len(r) for r in ids)
    input_ids = torch.full((len(ids), t), endoftext, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, r in enumerate(ids):
        input_ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
    cols = set(range(256)) | set(input_ids.flatten().tolist())
    cols |= set(logits.topk(16, dim=-1).indices.flatten().tolist())
    cols = torch.tensor(sorted(cols), dtype=torch.long)
    save_file({"input_ids": input_ids, "attention_mask": mask, "columns": cols,
               "logits": logits[:, :, cols].contiguous()}, os.path.join(ROOT, "expected.safetensors"))

    model.generation_config.eos_token_id = None  # run MAX_NEW tokens, as the Go test asks with no EOS
    with torch.no_grad():
        out = model.generate(input_ids=input_ids[:1, :len(ids[0])], do_sample=False, max_new_tokens=MAX_NEW,
                             pad_token_id=endoftext, output_scores=True,
                             return_dict_in_generate=True)
    gap = min(float((s.topk(2, dim=-1).values[:, 0] - s.topk(2, dim=-1).values[:, 1]).min()) for s in out.scores)
    with open(os.path.join(ROOT, "greedy.json"), "w") as f:
        json.dump({"text": TEXTS[0], "prompt": ids[0], "max_new_tokens": MAX_NEW,
                   "output": out.sequences[0, len(ids[0]):].tolist(), "min_top2_gap": gap,
                   "transformers": transformers.__version__, "torch": torch.__version__}, f, indent=1)
    size = sum(os.path.getsize(os.path.join(ROOT, n)) for n in os.listdir(ROOT))
    print(f"qwen3: {size} bytes, {len(cols)} logit columns, greedy min top-2 gap {gap:.4f}")


if __name__ == "__main__":
    main()
