#!/usr/bin/env python3
"""PyTorch reference for internal/train (loss parity and load checks).

  train_reference.py make    a tiny random Llama (transformers init), token
                             shards, and the first 20 losses and grad norms of
                             full fine-tuning and of LoRA, computed with plain
                             PyTorch: the same batches in order (no shuffle),
                             loss = cross-entropy sum over labelled tokens of
                             the step's micro-batches / their count, torch's
                             clip_grad_norm_, torch.optim.AdamW with no decay
                             on biases and norm weights, the HF linear warmup
                             schedule (LambdaLR).
                             -> internal/train/testdata/parity/
  train_reference.py check   load the output dirs the Go test wrote with
                             -update (testdata/loadcheck/{full,lora,merged})
                             with transformers and peft, and record their
                             logits on fixed input -> testdata/load_check.json

Run with the reference venv (train_requirements.txt beside this file):
  /root/.cache/kfllm/venv-ref/bin/python scripts/golden/train_reference.py make
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.numpy import save_file as save_np
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "internal", "train", "testdata")
PAR = os.path.join(ROOT, "parity")

VOCAB, L, N = 256, 24, 16
BS, GA, STEPS = 4, 2, 20
LR, WARMUP, WD, CLIP = 3e-3, 3, 0.1, 1.0
LORA_R, LORA_ALPHA, TARGETS = 4, 8.0, ["q_proj", "v_proj"]


def config():
    return LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=10000.0, initializer_range=0.02,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
                       attn_implementation="eager")


def shards(rng, n):
    ids = np.zeros((n, L), np.int32)
    labels = np.full((n, L), -100, np.int32)
    mask = np.zeros((n, L), np.int32)
    for i in range(n):
        length = int(rng.integers(L // 2, L + 1))
        prompt = int(rng.integers(3, length - 2))
        row = rng.integers(3, VOCAB, size=length)
        row[0] = 1
        row[length - 1] = 2
        ids[i, :length] = row
        mask[i, :length] = 1
        labels[i, prompt:length] = row[prompt:length]
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def no_decay(name):
    return name.endswith(".bias") or "norm" in name


def run(model, params, data):
    groups = [{"params": [p for n, p in params if not no_decay(n)], "weight_decay": WD},
              {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    total = STEPS

    def lam(step):
        if step < WARMUP:
            return step / max(1, WARMUP)
        return max(0.0, (total - step) / max(1, total - WARMUP))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    ids = torch.from_numpy(data["input_ids"]).long()
    labels = torch.from_numpy(data["labels"]).long()
    mask = torch.from_numpy(data["attention_mask"]).long()
    micro_per_epoch = math.ceil(N / BS)
    steps_per_epoch = math.ceil(micro_per_epoch / GA)
    losses, norms = [], []
    model.train()
    for s in range(STEPS):
        first = (s % steps_per_epoch) * GA
        micro = [slice(m * BS, min((m + 1) * BS, N)) for m in range(first, min(first + GA, micro_per_epoch))]
        count = sum(int((labels[sl][:, 1:] != -100).sum()) for sl in micro)
        total_loss = 0.0
        for sl in micro:
            logits = model(input_ids=ids[sl], attention_mask=mask[sl]).logits.float()
            shift_logits = logits[:, :-1, :].reshape(-1, VOCAB)
            shift_labels = labels[sl][:, 1:].reshape(-1)
            loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
            total_loss += loss.item() / count
            (loss / count).backward()
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in params], CLIP)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total_loss)
        norms.append(float(norm))
    return losses, norms


def make():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    shutil.rmtree(PAR, ignore_errors=True)
    os.makedirs(PAR)
    cfg = config()
    model = LlamaForCausalLM(cfg)
    base = os.path.join(PAR, "base")
    model.save_pretrained(base, safe_serialization=True)
    rng = np.random.default_rng(7)
    data = shards(rng, N)
    ds = os.path.join(PAR, "shards")
    os.makedirs(ds)
    save_np(data, os.path.join(ds, "train.safetensors"))
    save_np(shards(rng, 8), os.path.join(ds, "eval.safetensors"))
    init = {k: v.clone() for k, v in model.state_dict().items()}

    full_losses, full_norms = run(model, list(model.named_parameters()), data)

    from peft import LoraConfig, get_peft_model
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(init)
    # init_lora_weights=False: A and B both random (nn.Linear's init), so the
    # first loss already depends on the adapter.
    lcfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=TARGETS,
                      task_type="CAUSAL_LM", init_lora_weights=False)
    pm = get_peft_model(model, lcfg)
    lora_params = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    save_file({n.replace(".default", ""): p.detach().clone().contiguous() for n, p in lora_params},
              os.path.join(PAR, "lora_init.safetensors"), metadata={"format": "pt"})
    lora_losses, lora_norms = run(pm, lora_params, data)

    out = {
        "settings": {"batch_size": BS, "grad_accum": GA, "steps": STEPS, "learning_rate": LR, "warmup_steps": WARMUP,
                     "weight_decay": WD, "max_grad_norm": CLIP, "lora_r": LORA_R, "lora_alpha": LORA_ALPHA,
                     "lora_target_modules": TARGETS, "torch": torch.__version__},
        "full": {"loss": full_losses, "grad_norm": full_norms},
        "lora": {"loss": lora_losses, "grad_norm": lora_norms},
    }
    with open(os.path.join(PAR, "losses.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("full:", full_losses[:3], "...", full_losses[-1])
    print("lora:", lora_losses[:3], "...", lora_losses[-1])


def check():
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    lc = os.path.join(ROOT, "loadcheck")
    ids = torch.tensor([[1, 17, 42, 99, 7, 250, 3, 64]])
    out = {"input_ids": ids[0].tolist()}
    for case in ["full", "merged"]:
        m = AutoModelForCausalLM.from_pretrained(os.path.join(lc, case), torch_dtype=torch.float32).eval()
        with torch.no_grad():
            out[case] = m(input_ids=ids).logits[0, -1].tolist()
    # The adapter dir holds the adapter alone: the base from its own dir, the adapter by peft.
    base = LlamaForCausalLM.from_pretrained(os.path.join(PAR, "base"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        out["base"] = base(input_ids=ids).logits[0, -1].tolist()
    pm = PeftModel.from_pretrained(base, os.path.join(lc, "lora")).eval()
    with torch.no_grad():
        out["lora_peft"] = pm(input_ids=ids).logits[0, -1].tolist()
    out["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                       "peft": __import__("peft").__version__}
    with open(os.path.join(ROOT, "load_check.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("recorded", os.path.join(ROOT, "load_check.json"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "check"])
    a = ap.parse_args()
    {"make": make, "check": check}[a.what]()
