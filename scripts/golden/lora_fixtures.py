#!/usr/bin/env python3
"""LoRA adapter fixtures for internal/model and internal/engine, made with
transformers + peft (versions pinned in lora_requirements.txt).

  lora_fixtures.py    -> internal/model/testdata/lora/<case>/
      base/           a tiny random model (config.json, model.safetensors)
      <adapter>/      a PEFT adapter on it with random NON-ZERO lora_A and
                      lora_B (adapter_config.json, adapter_model.safetensors),
                      saved by peft's save_pretrained
      expected.safetensors  <name>.logits [T,V] for the prompt "input_ids",
                      for the base ("base") and every adapter
      greedy.json     greedy generations (peft's generate, one prompt at a
                      time) per prompt, for the base and every adapter

  lora_fixtures.py check-run DIR
                      DIR is a LoRA finetune's output with go_greedy.json
                      (go test ./internal/train -run TestServeLoRARun
                      -lora-run-out DIR): peft loads the adapter onto the
                      weights beside it and must generate the same greedy
                      tokens as kfllm did, and not the base's

Setup:
  python3 -m venv ~/.cache/kfllm/venv-peft
  ~/.cache/kfllm/venv-peft/bin/pip install -r scripts/golden/lora_requirements.txt
  ~/.cache/kfllm/venv-peft/bin/python scripts/golden/lora_fixtures.py
"""
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "model", "testdata", "lora")
PAD, BOS, EOS = 0, 1, 2
VOCAB = 200
MAX_NEW = 12
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

CASES = {
    "llama": dict(
        config=lambda: LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   rms_norm_eps=1e-5, rope_theta=10000.0, initializer_range=0.2,
                                   bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                   tie_word_embeddings=False),
        base_id="kfllm-test/tiny-llama",
        adapters={
            # every Llama projection
            "all": dict(r=4, lora_alpha=8, target_modules=LLAMA_TARGETS),
            # a few, with per-module rank and alpha and rsLoRA scaling
            "some": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                         rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 4}, use_rslora=True),
        },
    ),
    "gpt2": dict(
        config=lambda: GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  initializer_range=0.2, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD),
        base_id="kfllm-test/tiny-gpt2",
        adapters={
            "all": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True),
        },
    ),
}


@torch.no_grad()
def greedy(model, prompt):
    ids = torch.tensor([prompt])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=MAX_NEW, eos_token_id=EOS, pad_token_id=PAD,
                         output_scores=True, return_dict_in_generate=True)
    gap = min(float((s.float().topk(2, dim=-1).values[:, 0] - s.float().topk(2, dim=-1).values[:, 1]).min())
              for s in out.scores)
    row = out.sequences[0, len(prompt):].tolist()
    if EOS in row:
        row = row[:row.index(EOS) + 1]
    return row, gap


@torch.no_grad()
def randomize(model, seed):
    # peft initialises lora_B to zero (the adapter starts as a no-op); a
    # fixture needs a delta that changes the answers.
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if "lora_A" in name or "lora_B" in name:
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def make_case(name, spec, seed):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_config(spec["config"](), torch_dtype=torch.float32).eval()
    base.save_pretrained(os.path.join(d, "base"), safe_serialization=True)
    g = torch.Generator().manual_seed(seed + 1)
    prompt = torch.randint(3, VOCAB, (9,), generator=g).tolist()
    prompts = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (5, 3, 8)]
    tensors = {"input_ids": torch.tensor(prompt)}
    with torch.no_grad():
        tensors["base.logits"] = base(input_ids=torch.tensor([prompt])).logits[0].float().contiguous()
    outputs = {"base": [greedy(base, p)[0] for p in prompts]}
    gaps = {}
    for i, (aname, kw) in enumerate(spec["adapters"].items()):
        fresh = AutoModelForCausalLM.from_pretrained(os.path.join(d, "base"), torch_dtype=torch.float32).eval()
        pm = get_peft_model(fresh, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kw))
        randomize(pm, seed + 10 + i)
        pm.config.name_or_path = spec["base_id"]
        pm.peft_config["default"].base_model_name_or_path = spec["base_id"]
        ad = os.path.join(d, aname)
        pm.save_pretrained(ad, safe_serialization=True)
        # What the fixture records is what peft does when it loads the
        # saved adapter onto the saved base, as a user would.
        again = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(os.path.join(d, "base"), torch_dtype=torch.float32), ad).eval()
        with torch.no_grad():
            tensors[aname + ".logits"] = again(input_ids=torch.tensor([prompt])).logits[0].float().contiguous()
        rows = []
        for p in prompts:
            row, gap = greedy(again, p)
            rows.append(row)
            gaps[aname] = min(gaps.get(aname, float("inf")), gap)
        outputs[aname] = rows
        if rows == outputs["base"]:
            sys.exit(f"{name}/{aname}: the adapter does not change the greedy answers")
        for f in os.listdir(ad):  # peft's README.md model card is not needed
            if f not in ("adapter_config.json", "adapter_model.safetensors"):
                os.remove(os.path.join(ad, f))
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "greedy.json"), "w") as f:
        json.dump({"prompts": prompts, "max_new_tokens": MAX_NEW, "eos_token_id": EOS, "outputs": outputs,
                   "min_top2_gap": gaps, "transformers": transformers.__version__, "peft": peft.__version__,
                   "torch": torch.__version__}, f, indent=1)
        f.write("\n")
    print(f"{name}: adapters {list(spec['adapters'])}, min top-2 gaps {gaps}")


def check_run(d):
    with open(os.path.join(d, "go_greedy.json")) as f:
        ref = json.load(f)
    base_dir = os.path.join(d, "_base")
    os.makedirs(base_dir, exist_ok=True)
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        if os.path.exists(os.path.join(d, f)):
            shutil.copy(os.path.join(d, f), base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
    eos = base.generation_config.eos_token_id
    pm = PeftModel.from_pretrained(base, d).eval()
    ok = True
    for name, model in (("adapter", pm), ("base", None)):
        rows = []
        for p in ref["prompts"]:
            ids = torch.tensor([p])
            if model is None:
                with pm.disable_adapter():
                    out = pm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=ref["max_new_tokens"], eos_token_id=eos, pad_token_id=eos)
            else:
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=ref["max_new_tokens"], eos_token_id=eos, pad_token_id=eos)
            row = out[0, len(p):].tolist()
            eoss = eos if isinstance(eos, list) else [eos]
            for i, tkn in enumerate(row):
                if tkn in eoss:
                    row = row[:i + 1]
                    break
            rows.append(row)
        same = rows == ref[name]
        ok = ok and same
        print(f"{name}: peft {rows}, kfllm {ref[name]}: {'same' if same else 'DIFFERENT'}")
    if ref["adapter"] == ref["base"]:
        sys.exit("the run's adapter answers as its base: nothing is checked")
    if not ok:
        sys.exit("kfllm and peft differ")
    print(f"check-run: kfllm's greedy tokens equal transformers {transformers.__version__} + peft {peft.__version__}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "check-run":
        check_run(sys.argv[2])
        return
    for i, (name, spec) in enumerate(CASES.items()):
        make_case(name, spec, 4200 + 100 * i)


if __name__ == "__main__":
    main()
