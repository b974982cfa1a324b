// Package tokenizer loads Hugging Face tokenizers (tokenizer.json, or GPT-2's
// encoder.json + vocab.bpe) and encodes and decodes text with the same ids and
// strings as the Python `tokenizers` library.
//
// It is built on github.com/sugarme/tokenizer: every stage is a sugarme
// component (normalizer.Normalizer, tokenizer.PreTokenizer, tokenizer.Model,
// tokenizer.Decoder), and a sugarme *tokenizer.Tokenizer is assembled from
// them. Where sugarme v0.3.0 falls short of Hugging Face this package supplies
// its own components through those same interfaces, without forking sugarme:
//
//   - Split pre-tokenizers run on github.com/dlclark/regexp2, which has the
//     lookahead `(?!\S)` of the GPT-2 / Llama 3 / Qwen patterns that Go's
//     regexp lacks (sugarme panics on them);
//   - the BPE model implements byte_fallback (<0xNN> tokens, Llama 2),
//     ignore_merges (Llama 3), fuse_unk and HF's merge order;
//   - the ByteLevel pre-tokenizer honours use_regex=false, and the ByteLevel
//     decoder turns invalid UTF-8 into U+FFFD as Rust's from_utf8_lossy does;
//   - added tokens are matched leftmost-longest on the raw text, as HF does.
//
// Encoding has two paths over the same components. The fast path, taken when
// every stage has a string-level implementation in this package (true for
// BPE tokenizers with the normalizers and pre-tokenizers Llama, Qwen and
// GPT-2 use), skips sugarme's offset bookkeeping, which costs most of its
// time. Otherwise the text goes through sugarme's own pipeline. Tests check
// that both paths give the same ids.
//
// Invalid UTF-8 input is replaced as Python's bytes.decode("utf-8",
// errors="replace") does (one U+FFFD per maximal invalid subpart), since the
// Python library only ever sees decoded strings.
package tokenizer
