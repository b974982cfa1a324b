// c10d.h: the C face of c10d.cpp, the project's only use of libtorch's
// distributed C++ API (c10d::TCPStore, c10d::ProcessGroupGloo,
// c10d::ProcessGroupNCCL when built with the nccl tag). Every
// function catches C++ exceptions and returns their message in *err
// (malloc'd; the caller frees it).
#ifndef KFLLM_C10D_H
#define KFLLM_C10D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kfllm_group kfllm_group;

// kfllm_nccl_built is 1 when ProcessGroupNCCL is compiled in (build tag
// nccl), else 0.
int kfllm_nccl_built(void);

// kfllm_group_new connects rank of world through a TCPStore at
// addr:port (rank 0 serves it) and makes the process group: with
// cuda_device < 0 (CPU tensors) a Gloo one whose collectives fail after
// timeout_ms, device_host naming the address Gloo listens on ("" =
// c10d's default device, iface = a network interface); with cuda_device
// >= 0 an NCCL one on that device (an error when not compiled in).
kfllm_group *kfllm_group_new(const char *addr, int port, int rank, int world,
                             int64_t timeout_ms, const char *device_host,
                             const char *iface, int cuda_device, char **err);

// kfllm_group_backend is c10d's name of the group's backend ("gloo",
// "nccl"), valid until kfllm_group_free.
const char *kfllm_group_backend(kfllm_group *g);

// kfllm_group_allreduce_sum sums tensors (at::Tensor*) across ranks in
// place, in buckets: bucket i holds sizes[i] consecutive tensors, one
// allreduce_coalesced each, all started before the first is waited for.
int kfllm_group_allreduce_sum(kfllm_group *g, void **tensors, int *sizes,
                              int nbuckets, char **err);

// kfllm_group_broadcast copies root's tensors into every rank's, in place.
int kfllm_group_broadcast(kfllm_group *g, void **tensors, int n, int root,
                          char **err);

// kfllm_group_barrier returns when every rank has reached it.
int kfllm_group_barrier(kfllm_group *g, char **err);

void kfllm_group_free(kfllm_group *g);

#ifdef __cplusplus
}
#endif
#endif
