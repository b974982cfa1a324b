#!/usr/bin/env python3
"""Training benchmark helpers for bench/train_vs_hf.sh.

  train_vs_hf.py make DIR              the demo's tiny Llama (vocab 1024, hidden
                                       128, 4 layers, MLP 344, tied embeddings,
                                       random init) in DIR/base and token shards
                                       in DIR/shards: 1024 rows of 120 tokens, no
                                       padding, loss on the last 12 (the answer),
                                       as in extractive QA
  train_vs_hf.py hf DIR STEPS THREADS  the Hugging Face Trainer on the same model
                                       and rows (batch 32, AdamW, linear
                                       schedule, fp32, CPU); prints one JSON line
  train_vs_hf.py report WORK OUT.md    appends the "## Training" section

Requirements: scripts/golden/train_requirements.txt (torch 2.1.0,
transformers 4.46.3, accelerate).
"""
import json
import os
import sys
import time

VOCAB, L, ROWS, ANSWER, BATCH = 1024, 120, 1024, 12, 32


def make(d):
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(os.path.join(d, "base"), safe_serialization=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, size=(ROWS, L)).astype(np.int32)
    labels = np.full((ROWS, L), -100, np.int32)
    labels[:, L - ANSWER:] = ids[:, L - ANSWER:]
    sh = os.path.join(d, "shards")
    os.makedirs(os.path.join(sh, "tokenizer"), exist_ok=True)
    data = {"input_ids": ids, "labels": labels, "attention_mask": np.ones((ROWS, L), np.int32)}
    save_file(data, os.path.join(sh, "train.safetensors"))
    # A tokenizer file for the output dir (finetune copies tokenizer/).
    with open(os.path.join(sh, "tokenizer", "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 256}, f)


def hf(d, steps, threads):
    import torch
    from safetensors.numpy import load_file
    from transformers import LlamaForCausalLM, Trainer, TrainingArguments
    torch.set_num_threads(threads)
    data = load_file(os.path.join(d, "shards", "train.safetensors"))

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return ROWS

        def __getitem__(self, i):
            return {k: torch.from_numpy(v[i]).long() for k, v in data.items()}

    model = LlamaForCausalLM.from_pretrained(os.path.join(d, "base"), torch_dtype=torch.float32)
    args = TrainingArguments(output_dir=os.path.join(d, "hf-out"), per_device_train_batch_size=BATCH,
                             max_steps=steps, learning_rate=2e-3, warmup_steps=5, lr_scheduler_type="linear",
                             weight_decay=0.0, max_grad_norm=1.0, logging_steps=10, save_strategy="no",
                             report_to=[], use_cpu=True, dataloader_num_workers=0, seed=42, disable_tqdm=True)
    tr = Trainer(model=model, args=args, train_dataset=DS())
    cpu0 = time.process_time()
    out = tr.train()
    cpu = time.process_time() - cpu0
    rt = out.metrics["train_runtime"]
    print(json.dumps({"tokens_per_second": steps * BATCH * L / rt, "train_runtime": rt, "train_cpu_seconds": cpu,
                      "train_loss": out.training_loss}))


def rss_kb(path):
    for line in open(path):
        if "Maximum resident set size" in line:
            return int(line.split(":")[1])
    raise SystemExit("no RSS in " + path)


def report(work, md):
    rows = []
    for line in open(os.path.join(work, "rounds.txt")):
        threads, rnd, go_tps, py_tps, go_rss, py_rss, go_cpu, py_cpu = line.split()
        rows.append((int(threads), int(rnd), float(go_tps), float(py_tps), int(go_rss), int(py_rss),
                     float(go_cpu), float(py_cpu)))
    meta = json.load(open(os.path.join(work, "meta.json")))
    out = ["", "## Training", "",
           "`finetune` (internal/train on gotch/libtorch 2.1.0) against the Hugging Face Trainer "
           f"(transformers {meta['transformers']}, torch {meta['torch']}) on the demo's model and data shape: a random "
           "Llama of ~1M parameters (vocab 1024, hidden 128, 4 layers, MLP 344, tied embeddings), fp32, CPU, "
           f"{BATCH} rows of {L} tokens per step, loss on the last {ANSWER} tokens of each row (the answer), "
           f"AdamW, linear schedule, clipping at 1.0, {meta['steps']} steps, the same libtorch thread count on both "
           "sides. tokens/s counts every input token (steps x 32 x 120 / training time, model loading excluded "
           "on both sides); tokens/CPU-s divides the same tokens by the user + system CPU time of the training "
           "loop (getrusage in Go, time.process_time() in Python), which other load on the machine disturbs "
           "much less than wall time; peak RSS is the whole process (`/usr/bin/time -v`), Python's interpreter and imports "
           "included. Best of the interleaved rounds per side.", "",
           "| threads | kfllm tokens/s | Trainer tokens/s | ratio | kfllm tokens/CPU-s | Trainer tokens/CPU-s | CPU ratio | kfllm peak RSS | Trainer peak RSS | RSS ratio |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for th in sorted({r[0] for r in rows}):
        rs = [r for r in rows if r[0] == th]
        g, p = max(r[2] for r in rs), max(r[3] for r in rs)
        gr, pr = min(r[4] for r in rs), min(r[5] for r in rs)
        tokens = meta["steps"] * BATCH * L
        gc, pc = tokens / min(r[6] for r in rs), tokens / min(r[7] for r in rs)
        out.append(f"| {th} | {g:.0f} | {p:.0f} | {g / p:.2f}x | {gc:.0f} | {pc:.0f} | {gc / pc:.2f}x | "
                   f"{gr / 1024:.0f} MB | {pr / 1024:.0f} MB | {gr / pr:.2f}x |")
    samples = [tuple(map(int, l.split())) for l in open(os.path.join(work, "rss.txt")) if l.strip()]
    last = max((s[0] for s in samples), default=0)
    early = [s for s in samples if s[0] >= 10]
    late = [s for s in samples if s[0] >= last // 2]
    if early and len(late) >= 2:
        (s0, r0), (s1, r1), (sh, rh) = early[0], late[-1], late[0]
        per100 = (r1 - rh) / max(1, s1 - sh) * 100
        out += ["", f"RSS across steps (kfllm, VmRSS sampled every 0.5 s over {s1} steps): {r0 / 1024:.1f} MB at "
                f"step {s0}, {rh / 1024:.1f} MB at step {sh}, {r1 / 1024:.1f} MB at step {s1}: "
                f"{per100:+.0f} KB per 100 steps over the second half (the heap settles in the first)."]
    out += ["", "Targets: at least 1.2x the tokens/s with at most 1.2x the peak RSS.", "",
            "Where the speed comes from: the same libtorch kernels do the arithmetic on both sides, so the "
            "gain is work not done. Only the positions whose shifted label is not -100 (12 of 120 here) go "
            "through the last layer's o_proj and MLP, the final norm, lm_head and the cross-entropy, forward "
            "and backward (`model.ForwardAt`); the Trainer computes logits for all 3,840 positions of a batch. "
            "A micro-batch makes one Go tensor (the logits handle ForwardAt returns); every other op calls gotch's C bindings directly and frees its result at once, "
            "and `train.TuneAllocator` keeps freed activations in the heap for the next step instead of "
            "faulting fresh zeroed pages in every step (about a third of the page faults and system time).", "",
            f"Measured {meta['date']} on {meta['cpu']} ({meta['ncpu']} CPUs, load average {meta['load']} at the "
            "start; other helpers' builds shared the machine, so absolute numbers are low and noisy, the rounds "
            "interleave the two sides). Re-run: `bench/train_vs_hf.sh` (STEPS, ROUNDS, THREADS).", "",
            "KFP metrics: `--metrics-output` gets `{\"metrics\":[{\"name\",\"numberValue\",\"format\":\"RAW\"}]}`, "
            "the mlpipeline-metrics format. KFP v2 shows a system.Metrics artifact's values from its metadata, "
            "which only the Python executor sets (dsl.Metrics.log_metric); a Go container cannot, so the file is "
            "the artifact's content and metrics.json in the model directory carries the same numbers.", ""]
    with open(md, "a") as f:
        f.write("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "hf":
        hf(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
