// Package model runs Hugging Face causal language models on libtorch
// (through gotch): Llama (and Mistral, SmolLM, TinyLlama: GQA, rope_theta,
// llama3 and linear rope scaling), Qwen2, Qwen3 and GPT-2, read from and written
// to a transformers model directory with transformers' own parameter names.
//
// Forward gives logits for training and evaluation (differentiable with
// LoadOptions.Trainable); Sequence, Prefill and DecodeStep generate, one
// batched forward per step for sequences of different lengths, which is
// what a serving scheduler drives; Generate is the simple loop over them.
// Sequences made by a BatchCache keep their KV caches in its shared,
// slot-indexed buffers, which a decode step writes and reads in place.
// Decode steps multiply their few rows by the weights, and attend, with
// AVX-512 kernels where the CPU has them (gemm_amd64.c; see gemm.go).
//
// The hot path calls libtorch through internal/torch (gotch's libtch
// bindings, not its ts wrappers), so that generating a token allocates no
// Go ballast and leaks no C memory. Parity with transformers is pinned by
// fixtures that scripts/golden/model_fixtures.py makes.
//
// A server that runs for weeks should call torch.TuneAllocatorForServing
// once at start (glibc otherwise keeps freed tensor memory in per-thread
// arenas and a rising mmap threshold; see docs/benchmarks.md): a released
// Sequence then hands its memory back. torch.SetThreads sizes libtorch's
// thread pool.
package model
