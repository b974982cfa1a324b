#!/usr/bin/env python3
"""Golden fixtures for internal/safetensors, written by the real Python library.

Run from the repository root:
    /root/.cache/kfllm/venv-ref/bin/python scripts/golden/safetensors_fixtures.py

Writes into internal/safetensors/testdata/:
  py_dtypes.safetensors      one tensor of each dtype (+ empty, scalar, an escaped
                             name), __metadata__ with one key; saved by safetensors.torch
  py_dtypes.json             per tensor: dtype, shape, raw bytes (hex), values
  py_numpy.safetensors       the integer/float tensors saved by safetensors.numpy
  py_sharded/                a tiny GPT-2 saved by transformers with
                             max_shard_size, so shards + model.safetensors.index.json
                             are exactly what from_pretrained reads
  py_sharded.json            per tensor: shard, dtype, shape, sha256 of the bytes
  conversions.json           float32 bit patterns and torch's BF16/F16 bits for them
  go_written.python.json     what Python reads from go_written.safetensors (a file
                             the Go test writes with -update), when that file exists

Go tests read these; they never run Python.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch
import safetensors
import safetensors.numpy
import safetensors.torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "internal", "safetensors", "testdata")

DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL",
}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def values(t):
    """Flat values; non-finite floats as the strings "inf", "-inf", "nan" (JSON has none)."""
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    out = []
    for v in t.flatten().tolist():
        if isinstance(v, float) and not np.isfinite(v):
            v = "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        out.append(v)
    return out


def describe(tensors, path):
    out = {}
    for name, t in tensors.items():
        out[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                     "hex": raw_bytes(t).hex(), "values": values(t)}
    return out


def dtypes_fixture():
    g = torch.Generator().manual_seed(0)
    ts = {
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.tensor([1.0, -2.5, 65504.0, 6.0e-8, float("inf"), 0.333], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -2.5], [3.0e38, 1.0e-40]], dtype=torch.bfloat16),
        "f64": torch.tensor([3.141592653589793, -1e300], dtype=torch.float64),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "i16": torch.tensor([-32768, 7], dtype=torch.int16),
        "i32": torch.tensor([[-2147483648, 0, 2147483647]], dtype=torch.int32),
        "i64": torch.tensor([-9223372036854775808, 9223372036854775807], dtype=torch.int64),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
        "name with \"quote\", tab\t, é": torch.tensor([1], dtype=torch.int32),
    }
    md = {"format": "pt <&> \u2028 \x01 é \"q\" \n"}
    path = os.path.join(OUT, "py_dtypes.safetensors")
    safetensors.torch.save_file(ts, path, metadata=md)
    back = safetensors.torch.load_file(path)
    for k, v in ts.items():
        assert torch.equal(back[k], v) or (v.dtype.is_floating_point and torch.equal(back[k].isnan(), v.isnan())), k
    with open(os.path.join(OUT, "py_dtypes.json"), "w") as f:
        json.dump({"metadata": md, "tensors": describe(ts, path)}, f, indent=1, sort_keys=True, allow_nan=False)

    nts = {k: ts[k].numpy() for k in ("f32", "f64", "i8", "i16", "i32", "i64", "u8", "mask", "empty")}
    safetensors.numpy.save_file(nts, os.path.join(OUT, "py_numpy.safetensors"), metadata={"format": "np"})


def sharded_fixture():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=8, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(cfg)
    d = os.path.join(OUT, "py_sharded")
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    model.save_pretrained(d, max_shard_size="4KB", safe_serialization=True)
    for extra in ("config.json", "generation_config.json"):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2, shards
    out = {"total_size": index["metadata"]["total_size"], "tensors": {}}
    for shard in shards:
        sd = safetensors.torch.load_file(os.path.join(d, shard))
        for name, t in sd.items():
            out["tensors"][name] = {"shard": shard, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                                    "sha256": hashlib.sha256(raw_bytes(t)).hexdigest()}
    with open(os.path.join(OUT, "py_sharded.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


def conversions_fixture():
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65505.0, 65519.0, 65520.0, 1e6, -1e6,
               6.1035156e-05, 6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
               1e-10, float("inf"), float("-inf"), float("nan"), 3.4028235e38, 1.1754944e-38,
               1e-45, 1.00390625, 1.01171875, 1.0009765625, 1.0029296875, 0.1, 1 / 3]
    bits = [struct.unpack("<I", struct.pack("<f", x))[0] for x in special]
    rng = np.random.default_rng(0)
    # Random bit patterns over the whole float32 range, and values near halfway points.
    bits += rng.integers(0, 2**32, size=3000, dtype=np.uint64).tolist()
    for b in rng.integers(0, 2**31, size=1000, dtype=np.uint64).tolist():
        bits.append((int(b) & ~0xFFFF) | 0x8000)   # BF16 ties
        bits.append((int(b) & ~0x1FFF) | 0x1000)   # F16 ties
    f = torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())
    bf = f.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).tolist()
    hf = f.to(torch.float16).view(torch.int16).numpy().view(np.uint16).tolist()
    with open(os.path.join(OUT, "conversions.json"), "w") as fh:
        json.dump({"torch": torch.__version__, "f32_bits": bits, "bf16_bits": bf, "f16_bits": hf}, fh)


def go_written_check():
    path = os.path.join(OUT, "go_written.safetensors")
    if not os.path.exists(path):
        print("no go_written.safetensors yet: run go test ./internal/safetensors -run TestGoWritten -update", file=sys.stderr)
        return
    out = {"safetensors": safetensors.__version__, "numpy": {}, "torch": {}}
    from safetensors import safe_open
    with safe_open(path, framework="np") as f:
        out["metadata"] = f.metadata()
        for k in f.keys():
            if f.get_slice(k).get_dtype() == "BF16":
                continue  # numpy has no bfloat16
            a = f.get_tensor(k)
            out["numpy"][k] = {"dtype": str(a.dtype), "shape": list(a.shape), "values": values(torch.from_numpy(a))}
    for k, t in safetensors.torch.load_file(path).items():
        out["torch"][k] = {"dtype": str(t.dtype), "shape": list(t.shape), "values": values(t)}
    with open(os.path.join(OUT, "go_written.python.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    print("safetensors", safetensors.__version__, "torch", torch.__version__)
    dtypes_fixture()
    sharded_fixture()
    conversions_fixture()
    go_written_check()
