#!/usr/bin/env python3
"""transformers' side of bench/serving_bench.sh: generate() on the same model
directory, fp32, CPU, the same thread count, greedy, a fixed number of new
tokens; batch 1 (single stream) and batch 8 (what batching can reach).

  serving_transformers.py MODEL_DIR THREADS NEW_TOKENS ROUNDS -> one JSON line
"""
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    model_dir, threads, new, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    prompts = [f"Client {c} asks: what is the capital of France?" for c in range(8)]

    def run(batch):
        """tokens per wall second and per CPU second of this process"""
        enc = tok(prompts[:batch], return_tensors="pt", padding=True)
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=new, min_new_tokens=new,
                                 pad_token_id=tok.eos_token_id)
        secs, cpu_secs = time.perf_counter() - start, time.process_time() - cpu
        n = (out.shape[1] - enc["input_ids"].shape[1]) * batch
        return n / secs, n / cpu_secs

    run(1)  # warm up
    single = [run(1) for _ in range(rounds)]
    batch8 = [run(8) for _ in range(rounds)]
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                      "transformers": transformers.__version__, "new_tokens": new,
                      "single_tok_s": max(s[0] for s in single), "batch8_tok_s": max(b[0] for b in batch8),
                      "single_tok_cpu_s": max(s[1] for s in single), "batch8_tok_cpu_s": max(b[1] for b in batch8)}))


if __name__ == "__main__":
    main()
