#!/usr/bin/env python3
"""transformers' side of bench/model_vs_transformers.sh: the same prefill and
decode measurements as internal/model's BenchmarkPrefill and BenchmarkDecode,
with eager generate() on the same weights, fp32, CPU, the same thread count.

  model_transformers.py MODEL_DIR THREADS ITERATIONS  -> one JSON line
"""
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

PROMPT, SHORT, DECODE = 128, 16, 128  # as in internal/model/bench_test.go


def main():
    model_dir, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(7)
    long_prompt = torch.randint(3, model.config.vocab_size, (1, PROMPT), generator=g)
    short_prompt = torch.randint(3, model.config.vocab_size, (1, SHORT), generator=g)

    clock = time.perf_counter

    def gen(ids, n):
        start = clock()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
        return clock() - start

    def measure():
        prefill = sum(gen(long_prompt, 1) for _ in range(iters))
        decode = 0.0
        for _ in range(iters):
            # decode time = a run with DECODE more steps minus the prefill-only run
            decode += gen(short_prompt, DECODE + 1) - gen(short_prompt, 1)
        return PROMPT * iters / prefill, DECODE * iters / decode

    gen(long_prompt, 1)  # warm up
    gen(short_prompt, 4)
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__}
    out["prefill_tok_s"], out["decode_tok_s"] = measure()
    # The same per CPU-second of this process: steadier on a shared machine.
    clock = time.process_time
    out["prefill_tok_cpu_s"], out["decode_tok_cpu_s"] = measure()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
