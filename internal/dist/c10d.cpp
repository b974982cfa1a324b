// c10d.cpp: a C shim over libtorch 2.1.0's c10d (libtorch_cpu.so exports
// it; its headers come with the torch wheel, gloo's from Debian's
// libgloo-dev, see scripts/libtorch.sh). It only passes handles around:
// the Gloo device is made by c10d's own ProcessGroupGloo::createDevice*
// and held as an opaque shared_ptr, so no gloo struct is laid out here.
//
// ProcessGroupNCCL (in libtorch_cuda.so) is compiled in only when
// USE_C10D_NCCL is defined: the build tag nccl (nccl.go) defines it and
// links the CUDA libraries; the headers it then needs (nccl.h, the CUDA
// runtime's) come from the nvidia-*-cu12 wheels (scripts/libtorch.sh
// install_cuda_headers). Without it a CUDA group is a clear error.
#include "c10d.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

struct kfllm_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
  std::string backend;  // pg->getBackendName(): "gloo" or "nccl"
};

static void set_err(char **err, const char *what) {
  if (err != nullptr) {
    *err = strdup(what);
  }
}

// guard runs f, turning a C++ exception into *err and -1.
template <typename F>
static int guard(char **err, F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error &e) {
    set_err(err, e.what_without_backtrace());
  } catch (const std::exception &e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "unknown C++ exception");
  }
  return -1;
}

static std::vector<at::Tensor> tensors_of(void **ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    out.push_back(*static_cast<at::Tensor *>(ts[i]));
  }
  return out;
}

extern "C" {

int kfllm_nccl_built(void) {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// new_nccl makes the NCCL process group of a rank whose tensors are on
// cuda:device, and makes that device the thread's current one (c10d's
// barrier and NCCL's communicator set-up use it).
static c10::intrusive_ptr<c10d::Backend> new_nccl(
    const c10::intrusive_ptr<c10d::Store> &store, int rank, int world,
    std::chrono::milliseconds timeout, int device) {
#ifdef USE_C10D_NCCL
  // Without any GPU, ProcessGroupNCCL's constructor says so itself.
  int n = c10::cuda::device_count();
  if (n > 0) {
    if (device >= n) {
      throw std::runtime_error("cuda:" + std::to_string(device) + " asked for, but there are " +
                               std::to_string(n) + " CUDA devices");
    }
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
  }
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
  (void)store, (void)rank, (void)world, (void)timeout, (void)device;
  throw std::runtime_error(
      "tensors on CUDA need ProcessGroupNCCL, which this build lacks (built "
      "without the nccl tag: the CPU build); use the CUDA image or --device cpu");
#endif
}

kfllm_group *kfllm_group_new(const char *addr, int port, int rank, int world,
                             int64_t timeout_ms, const char *device_host,
                             const char *iface, int cuda_device, char **err) {
  kfllm_group *g = nullptr;
  int rc = guard(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(world);
    so.waitWorkers = true;
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
    if (cuda_device >= 0) {
      auto pg = new_nccl(store, rank, world, timeout, cuda_device);
      g = new kfllm_group{store, pg, pg->getBackendName()};
      return;
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (iface != nullptr && iface[0] != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (device_host != nullptr && device_host[0] != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(device_host));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    g = new kfllm_group{store, pg, pg->getBackendName()};
  });
  return rc == 0 ? g : nullptr;
}

int kfllm_group_allreduce_sum(kfllm_group *g, void **tensors, int *sizes,
                              int nbuckets, char **err) {
  return guard(err, [&] {
    std::vector<std::vector<at::Tensor>> buckets;
    buckets.reserve(nbuckets);
    int k = 0;
    for (int b = 0; b < nbuckets; b++) {
      buckets.push_back(tensors_of(tensors + k, sizes[b]));
      k += sizes[b];
    }
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(nbuckets);
    c10d::AllreduceCoalescedOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    for (auto &b : buckets) {
      works.push_back(b.size() == 1 ? g->pg->allreduce(b, opts) : g->pg->allreduce_coalesced(b, opts));
    }
    for (auto &w : works) {
      w->wait();
    }
  });
}

int kfllm_group_broadcast(kfllm_group *g, void **tensors, int n, int root,
                          char **err) {
  return guard(err, [&] {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    for (int i = 0; i < n; i++) {
      std::vector<at::Tensor> one{*static_cast<at::Tensor *>(tensors[i])};
      g->pg->broadcast(one, opts)->wait();
    }
  });
}

int kfllm_group_barrier(kfllm_group *g, char **err) {
  return guard(err, [&] { g->pg->barrier()->wait(); });
}

const char *kfllm_group_backend(kfllm_group *g) { return g->backend.c_str(); }

void kfllm_group_free(kfllm_group *g) { delete g; }

}  // extern "C"
