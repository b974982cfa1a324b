#!/usr/bin/env bash
# check_nccl_build.sh [--dist-only] [OUT]: prove that internal/dist's NCCL
# variant (go build -tags nccl, what the CUDA images build) compiles and
# links against libtorch 2.1.0's CUDA build, on a machine without a GPU.
#
#   1. libtorch 2.1.0 cuda (scripts/libtorch.sh: the torch==2.1.0 cp311
#      wheel, the CUDA 12.1 build, with libtorch_cuda.so and
#      c10d/ProcessGroupNCCL.hpp, and the nvidia-*-cu12 wheels it pins,
#      nvidia-nccl-cu12==2.18.1 among them), the gloo headers and the CUDA and
#      NCCL headers out of those wheels; all cached in $KFLLM_CACHE
#      (~/.cache/kfllm; a first run downloads about 2.6 GB of wheels with
#      pip download --no-deps, sha256-pinned).
#   2. go test -c -tags nccl ./internal/dist, with the cgo settings of
#      scripts/images.sh (cuda): compiles c10d.cpp with USE_C10D_NCCL and
#      links -ltorch_cuda -lc10_cuda.
#   3. checks the test binary: libtorch_cuda.so is DT_NEEDED and
#      c10d::ProcessGroupNCCL's constructor is among the symbols it takes
#      from it; then runs TestNCCLGroup in it (LD_LIBRARY_PATH = the CUDA
#      libtorch): without a GPU, ProcessGroupNCCL's own "no GPUs found"
#      must come back through the shim; with two GPUs, two ranks sum and
#      broadcast through NCCL. The Gloo tests run in it too.
#   4. (unless --dist-only) go build -tags nccl ./components/finetune, the
#      binary of the finetune image, linked as scripts/images.sh links it.
# OUT (default: a temporary directory, removed) keeps the binaries.
set -euo pipefail

cd "$(dirname "$0")/.."
dist_only=false
if [[ ${1:-} == --dist-only ]]; then dist_only=true; shift; fi
KFLLM_CACHE=${KFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfllm}
GO=${GO:-go}
say() { echo "check_nccl_build: $*" >&2; }

# shellcheck source=scripts/libtorch.sh
source scripts/libtorch.sh
LT=$KFLLM_CACHE/libtorch-$TORCH_VERSION-cuda
install_libtorch cuda "$LT"
install_gloo_headers
install_cuda_headers
write_link_folder cuda "$LT/lib" "$LT/link"

# As scripts/images.sh's libtorch_env (cuda) sets them, so the go build
# cache is shared with make images.
inc=$KFLLM_CACHE/libtorch-$TORCH_VERSION/include
[[ -d $inc ]] || inc=$LT/include
export CGO_ENABLED=1 CGO_CXXFLAGS=-D_GLIBCXX_USE_CXX11_ABI=0 CGO_LDFLAGS=-Wl,-rpath,/opt/libtorch/lib
export LIBRARY_PATH=$LT/link:$LT/lib
export CPLUS_INCLUDE_PATH=$inc:$inc/torch/csrc/api/include:$GLOO_INCLUDE:$CUDA_INCLUDE

out=${1:-}
if [[ -z $out ]]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/kfllm-nccl-XXXXXX")
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

start=$SECONDS
say "go test -c -tags nccl ./internal/dist"
"$GO" test -c -tags nccl -o "$out/dist-nccl.test" ./internal/dist
say "compiled and linked in $((SECONDS - start))s"

needed=$(readelf -d "$out/dist-nccl.test" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in libtorch_cuda.so libc10_cuda.so libtorch_cpu.so; do
	grep -qx "$lib" <<<"$needed" || { say "FAIL: $lib is not DT_NEEDED by the test binary: $(tr '\n' ' ' <<<"$needed")"; exit 1; }
done
ctor=$(nm -D --undefined-only "$out/dist-nccl.test" | c++filt | grep -c 'c10d::ProcessGroupNCCL::ProcessGroupNCCL(' || true)
[[ $ctor -gt 0 ]] || { say "FAIL: the test binary does not call c10d::ProcessGroupNCCL's constructor"; exit 1; }
defined=$(nm -D --defined-only "$LT/lib/libtorch_cuda.so" | c++filt | grep -c 'c10d::ProcessGroupNCCL::ProcessGroupNCCL(' || true)
[[ $defined -gt 0 ]] || { say "FAIL: $LT/lib/libtorch_cuda.so does not define c10d::ProcessGroupNCCL's constructor"; exit 1; }
say "DT_NEEDED libtorch_cuda.so, libc10_cuda.so; c10d::ProcessGroupNCCL::ProcessGroupNCCL undefined in it, defined by libtorch_cuda.so"

# Every library the binary needs must resolve in the CUDA libtorch (the
# GPU driver, libcuda.so.1, is not one: libtorch loads it when CUDA is used).
missing=$(LD_LIBRARY_PATH=$LT/lib ldd "$out/dist-nccl.test" | grep 'not found' || true)
[[ -z $missing ]] || { say "FAIL: unresolved libraries: $missing"; exit 1; }

say "running TestNCCLGroup and the Gloo tests in the nccl build"
LD_LIBRARY_PATH=$LT/lib "$out/dist-nccl.test" -test.run '^(TestNCCLGroup|TestAllReduceAndBroadcast|TestPeerKilledFailsCollective)$' -test.v -test.count=1

if ! $dist_only; then
	start=$SECONDS
	say "go build -tags nccl ./components/finetune (as scripts/images.sh links it)"
	"$GO" build -tags nccl -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= '-extldflags=-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed'" \
		-o "$out/finetune" ./components/finetune
	needed=$(readelf -d "$out/finetune" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	grep -qx libtorch_cuda.so <<<"$needed" || { say "FAIL: finetune does not need libtorch_cuda.so"; exit 1; }
	say "finetune (nccl) linked in $((SECONDS - start))s"
	usage=$(LD_LIBRARY_PATH=$LT/lib "$out/finetune" --help 2>&1 || true)
	[[ $usage == *ProcessGroupNCCL* ]] || { say "FAIL: the nccl finetune does not start: $usage"; exit 1; }
fi
say "OK: internal/dist's NCCL variant compiles and links against libtorch $TORCH_VERSION (CUDA 12.1, NCCL 2.18.1)"
