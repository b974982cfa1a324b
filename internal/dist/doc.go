// Package dist is data-parallel training's process group: a small cgo
// shim (c10d.cpp) over libtorch 2.1.0's own c10d, a TCPStore for the
// rendezvous and, chosen once when the group is made, a ProcessGroupGloo
// for CPU tensors or a ProcessGroupNCCL for CUDA ones, plus the rank's
// environment as torchrun, PyTorchJob and TrainJob set it (Env).
//
// ProcessGroupNCCL lives in libtorch_cuda.so, which the CPU libtorch that
// tests and CI use does not have: it is compiled in only with the build
// tag nccl (nccl.go; the CUDA images, scripts/images.sh), against nccl.h
// and the CUDA runtime's headers from the pinned nvidia-*-cu12 wheels
// (scripts/libtorch.sh install_cuda_headers). scripts/check_nccl_build.sh
// (and TestNCCLBuildScript, where the CUDA libtorch is cached) compiles
// and links that variant and runs it up to ProcessGroupNCCL's own "no
// GPUs found" on a machine without a GPU.
//
// It is, beside internal/torch, the only package with libtorch C++ in it
// (depcheck_test.go). The C++ side passes tensor handles (the at::Tensor*
// that internal/torch's Tensor is) to c10d and holds c10d objects; the
// Gloo device comes from c10d's ProcessGroupGloo::createDevice* and is
// held as an opaque shared_ptr, so no gloo struct layout is compiled in
// (the gloo headers, which the torch wheel lacks, are Debian's
// libgloo-dev of 2022-05-18; scripts/libtorch.sh). That matters: the gloo
// inside libtorch_cpu.so is newer (its rendezvous::Store has the "v2"
// virtuals, has_v2_support and multi_get, which the Debian header lacks),
// so c10d's GlooStore, whose vtable depends on them, is never instantiated
// here; ProcessGroupGloo and its Options hold gloo objects only through
// pointers, so their sizes do not depend on the gloo headers. Like the rest of the
// project it is built with _GLIBCXX_USE_CXX11_ABI=0, the torch wheel's
// ABI (.kfllm/env).
//
// Launch, in launch.go, starts a node's local ranks as child processes
// (finetune --nproc-per-node).
package dist
