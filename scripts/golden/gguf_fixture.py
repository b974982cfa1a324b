"""Fixtures and goldens for internal/gguf and internal/model/gguf_parity_test.go.

  python scripts/golden/gguf_fixture.py            # tiny fixture + its goldens
  python scripts/golden/gguf_fixture.py --real F   # goldens for the real SmolLM2 GGUF F

Tiny fixture: a random transformers LlamaForCausalLM (GQA, tied embeddings)
and a byte-level BPE tokenizer trained here with `tokenizers` (SmolLM's
pre-tokenizer: Digits(individual) + ByteLevel) are written as a GGUF with
gguf-py's GGUFWriter, as llama.cpp's converter lays one out (q/k rows
permuted for its rotary layout, tied model without output.weight), every
block tensor in one of F32, F16, BF16, Q8_0, Q4_0, Q4_1. Goldens:

  internal/gguf/testdata/llama_tiny.gguf           the fixture
  internal/gguf/testdata/values.gguf               every metadata value type
  internal/gguf/testdata/llama_tiny_expected.safetensors
      the state dict transformers' GGUF loader makes of it (dequantized,
      q/k un-permuted; lm_head tied by hand, since transformers 4.46 leaves
      it random), checked here against gguf-py's dequantization of the
      un-permuted weights
  internal/gguf/testdata/llama_tiny_tokens.json
      ids the trained tokenizer (Python `tokenizers`) gives a few strings
  internal/model/testdata/gguf/expected.safetensors
      transformers' logits of the GGUF-loaded model on fixed ids

Real file (--real): slices of a few tensors as transformers' GGUF loader
dequantizes them, token ids from a Python `tokenizers` tokenizer built from
the GGUF vocabulary with Digits(individual)+ByteLevel (SmolLM2's own
tokenizer.json pre-tokenizer; the script checks that it splits the strings
as llama.cpp's "smollm" regexes do), and transformers' logits on a prompt.

Requirements: scripts/golden/gguf_fixture_requirements.txt.
"""

import argparse
import json
import os
import pathlib
import tempfile

import gguf
import numpy as np
import regex
import torch
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
GGUF_TD = ROOT / "internal/gguf/testdata"
MODEL_TD = ROOT / "internal/model/testdata/gguf"

STRINGS = [
    "Hello world! 12345 apples cost $3.50.",
    "  leading spaces\nand\ttabs  ",
    "naïve café 東京 ½ ٣ x² — “quotes”",
    "<|im_start|>user\nWhat's 7*8?<|im_end|>",
    "Ada Lovelace was born in 1815 in London.",
    "don't STOP, it's 2024-01-02<sep>end",
]

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Ada Lovelace was born in 1815 in London and worked with Charles Babbage.",
    "Paris is the capital of France; Berlin is the capital of Germany.",
    "In 2024 the population was 12,345,678 people, up 3.5% from 2023.",
    "She said: \"don't stop!\" and he asked what's next?",
    "naïve café résumé 東京 Zürich",
    "apples cost $3.50 and oranges cost $4.25 at the market on Main Street.",
] * 20

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["<sep>"]

# llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM: each regex
# splits the pieces the previous one left.
SMOLLM_REGEXES = [
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
]


def smollm_pre_tokenizer():
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )


def llama_cpp_split(text):
    """Words as llama.cpp's smollm regexes split text (before byte mapping)."""
    words = [text]
    for pat in SMOLLM_REGEXES:
        out = []
        for w in words:
            pos = 0
            for m in regex.finditer(pat, w):
                if m.start() > pos:
                    out.append(w[pos : m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(w):
                out.append(w[pos:])
        words = out
    return words


def check_split_matches_llama_cpp(tok):
    byte_dec = {v: k for k, v in bytes_to_unicode().items()}
    for s in STRINGS:
        for part in s.split("<|im_start|>"):  # special tokens are split off before either
            for p in part.replace("<|im_end|>", "\0").replace("<sep>", "\0").split("\0"):
                hf = [bytes(byte_dec[c] for c in w).decode() for w, _ in tok.pre_tokenizer.pre_tokenize_str(p)]
                cpp = llama_cpp_split(p)
                assert hf == cpp, (p, hf, cpp)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = smollm_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_tokens(USER_DEFINED)
    return tok


def permute(w, n_head):
    """llama.cpp's row order for q/k: within each head, interleave the two
    rotary halves (HF row j*hd/2+i goes to row 2i+j)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode_tensor(w, qtype):
    w = np.ascontiguousarray(w, dtype=np.float32)
    if qtype == Q.F32:
        return w, None
    if qtype == Q.F16:
        return w.astype(np.float16), None
    return gguf.quants.quantize(w, qtype), qtype


# Types per block tensor, by layer: every supported type appears.
LAYER_TYPES = [
    {"attn_q": Q.Q4_0, "attn_k": Q.Q4_1, "attn_v": Q.Q8_0, "attn_output": Q.F16, "ffn_gate": Q.BF16, "ffn_up": Q.F32, "ffn_down": Q.Q4_1},
    {"attn_q": Q.Q4_1, "attn_k": Q.Q4_0, "attn_v": Q.F16, "attn_output": Q.Q8_0, "ffn_gate": Q.Q4_0, "ffn_up": Q.BF16, "ffn_down": Q.F32},
]
HF_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def write_tiny_gguf(path, model, cfg, tok):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("llama tiny fixture")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)

    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    types = []
    for t in tokens:
        types.append(gguf.TokenType.CONTROL if t in SPECIAL else gguf.TokenType.USER_DEFINED if t in USER_DEFINED else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_unk_token_id(vocab["<|endoftext|>"])
    w.add_pad_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)

    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    unpermuted = {}  # HF name -> what dequantizing the GGUF tensor should give

    def add(name, hf, arr, qtype, heads=0):
        stored = permute(arr, heads) if heads else arr
        data, raw = encode_tensor(stored, qtype)
        w.add_tensor(name, data, raw_dtype=raw)
        deq = gguf.quants.dequantize(data, raw) if raw is not None else data.astype(np.float32)
        unpermuted[hf] = permute_back(deq, heads) if heads else deq

    add("token_embd.weight", "model.embed_tokens.weight", sd["model.embed_tokens.weight"], Q.Q8_0)
    for i, types_i in enumerate(LAYER_TYPES):
        for short, qtype in types_i.items():
            hf = f"model.layers.{i}.{HF_NAMES[short]}.weight"
            heads = {"attn_q": cfg.num_attention_heads, "attn_k": cfg.num_key_value_heads}.get(short, 0)
            add(f"blk.{i}.{short}.weight", hf, sd[hf], qtype, heads)
        for short in ("attn_norm", "ffn_norm"):
            hf = f"model.layers.{i}.{HF_NAMES[short]}.weight"
            add(f"blk.{i}.{short}.weight", hf, sd[hf], Q.F32)
    add("output_norm.weight", "model.norm.weight", sd["model.norm.weight"], Q.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return unpermuted


def write_values_gguf(path):
    """One key of every value type, nested arrays included, a non-default
    alignment and two tensors, for the reader (transformers cannot parse nested arrays, so this is not
    the model fixture)."""
    w = gguf.GGUFWriter(str(path), "none")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo")
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_nested", [[1, 2], [3]])
    w.add_array("test.arr_str", ["a", "", "東京"])

    w.add_tensor("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("f16", np.array([1.5, -2, 65504, 6e-8], dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def permute_back(w, n_head):
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf_model(path):
    m = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
    # transformers 4.46 does not read "no output.weight" as tied: tie by hand.
    m.lm_head.weight = m.model.embed_tokens.weight
    return m.eval()


def tiny():
    torch.manual_seed(0)
    tok = train_tokenizer()
    check_split_matches_llama_cpp(tok)
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(with_added_tokens=True), hidden_size=64, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_theta=50000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # non-trivial norms
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    GGUF_TD.mkdir(parents=True, exist_ok=True)
    MODEL_TD.mkdir(parents=True, exist_ok=True)
    path = GGUF_TD / "llama_tiny.gguf"
    want = write_tiny_gguf(path, model, cfg, tok)
    write_values_gguf(GGUF_TD / "values.gguf")

    ref = load_gguf_model(path)
    got = {k: v.detach().numpy() for k, v in ref.state_dict().items() if k != "lm_head.weight"}
    assert set(got) == set(want), set(got) ^ set(want)
    for k in got:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    save_file({k: np.ascontiguousarray(v) for k, v in got.items()}, str(GGUF_TD / "llama_tiny_expected.safetensors"))

    cases = [{"text": s, "ids": tok.encode(s).ids} for s in STRINGS]
    (GGUF_TD / "llama_tiny_tokens.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")

    ids = torch.tensor([tok.encode("Ada Lovelace was born in 1815 in London.").ids])
    with torch.no_grad():
        logits = ref(ids).logits
    save_file({"input_ids": ids.numpy().astype(np.int64), "logits": logits.numpy()}, str(MODEL_TD / "expected.safetensors"))
    print("tiny:", path.stat().st_size, "bytes;", len(got), "tensors; vocab", cfg.vocab_size)


REAL_SLICES = [  # (HF name, flat start, count)
    ("model.embed_tokens.weight", 0, 8),
    ("model.embed_tokens.weight", 576 * 49151 + 100, 8),
    ("model.layers.0.self_attn.q_proj.weight", 576 * 33 + 64, 8),
    ("model.layers.0.self_attn.k_proj.weight", 576 * 40, 8),
    ("model.layers.17.self_attn.v_proj.weight", 576 * 5 + 32, 8),
    ("model.layers.29.self_attn.o_proj.weight", 576 * 575 + 500, 8),
    ("model.layers.3.mlp.gate_proj.weight", 576 * 1000, 8),
    ("model.layers.3.mlp.up_proj.weight", 576 * 1535 + 568, 8),
    ("model.layers.3.mlp.down_proj.weight", 1536 * 300 + 1000, 8),
    ("model.layers.12.input_layernorm.weight", 0, 8),
    ("model.layers.12.post_attention_layernorm.weight", 568, 8),
    ("model.norm.weight", 100, 8),
]


def real(path):
    path = pathlib.Path(path)
    m = load_gguf_model(path)
    sd = m.state_dict()
    slices = [
        {"tensor": n, "start": s, "values": sd[n].flatten()[s : s + c].tolist()} for n, s, c in REAL_SLICES
    ]

    r = gguf.GGUFReader(str(path))
    def field(k):
        f = r.fields[k]
        return [bytes(f.parts[i]).decode() for i in f.data]
    tokens, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges")
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(x.split(" ", 1)) for x in merges]))
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tok.pre_tokenizer = smollm_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    check_split_matches_llama_cpp(tok)
    cases = [{"text": s, "ids": tok.encode(s).ids} for s in STRINGS]
    (GGUF_TD / "smollm2_golden.json").write_text(
        json.dumps({"tensors": slices, "tokens": cases}, ensure_ascii=False, indent=1) + "\n"
    )

    ids = torch.tensor([tok.encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n").ids])
    with torch.no_grad():
        logits = m(ids).logits[0]
    save_file(
        {"input_ids": ids.numpy().astype(np.int64), "last_logits": logits[-1].numpy().copy(), "first_logits": logits[0, :64].numpy().copy()},
        str(MODEL_TD / "smollm2_logits.safetensors"),
    )
    print("real: argmax", int(logits[-1].argmax()), repr(tok.decode([int(logits[-1].argmax())])), "max|logit|", float(logits.abs().max()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    a = ap.parse_args()
    if a.real:
        real(a.real)
    else:
        tiny()
