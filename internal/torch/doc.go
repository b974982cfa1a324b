// Package torch is the project's one layer over libtorch: gotch's libtch C
// bindings called directly, for internal/model (inference and the forward
// pass training differentiates) and internal/train (loss, backward, AdamW,
// LoRA).
//
// It does not use gotch's ts wrappers on any path that runs per token or
// per step, because each ts op mallocs a result slot it never frees and
// hangs a 100 KB Go ballast and a finalizer on its result. Here a result is
// a C handle (Tensor) owned by a Scope, which frees it explicitly: ops make
// no Go garbage and leak nothing. Parameters that callers hold for the
// life of a model stay *ts.Tensor (Of reads their handles; Wrap hands a
// handle to gotch).
//
// libtorch reports errors through a per-thread slot, so callers hold the
// OS thread (runtime.LockOSThread) across ops and the Scope's error check.
//
// Process-wide settings live here too: libtorch's thread count
// (SetThreads), its RNG seed (ManualSeed), grad mode (NoGrad), and glibc's
// allocator, tuned one way for a long-running server
// (TuneAllocatorForServing) and another for a training process
// (TuneAllocatorForTraining).
package torch
