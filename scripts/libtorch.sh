#!/usr/bin/env bash
# libtorch.sh VARIANT DEST: libtorch 2.1.0 for gotch v0.9.1, built from PyPI
# wheels pinned by sha256 (pytorch.org is not a registry we can reach).
#   cpu  : torch/include + the CPU libraries (libtorch_cpu, libc10, libgomp),
#          plus libcudart.so.12 and libcupti.so.12, which libtorch_cpu.so
#          names as DT_NEEDED; libcudart only loads the GPU driver when a
#          CUDA call is made, and a CPU run makes none.
#   cuda : every library of the torch wheel and of the nvidia-*-cu12 wheels
#          that torch==2.1.0 pins (CUDA 12.1, cuDNN 8.9), for the images.
# Wheels are cached in $KFLLM_CACHE/wheels (default ~/.cache/kfllm/wheels).
# Sourced by setup.sh and scripts/images.sh (the cuda variant for the images).
set -euo pipefail

KFLLM_CACHE=${KFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfllm}
TORCH_VERSION=2.1.0

# pip spec, wheel file, sha256, comma-separated prefixes to keep (cpu variant)
TORCH_WHEELS=(
  "torch==2.1.0 torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl 2224622407ca52611cbc5b628106fde22ed8e679031f5a99ce286629fc696128 torch/include/,torch/lib/libtorch_cpu.so,torch/lib/libc10.so,torch/lib/libgomp-,torch/lib/libshm.so"
  "nvidia-cuda-runtime-cu12==12.1.105 nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl 6e258468ddf5796e25f1dc591a31029fa317d97a0a94ed93468fc86301d61e40 nvidia/cuda_runtime/lib/libcudart.so.12"
  "nvidia-cuda-cupti-cu12==12.1.105 nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl e54fde3983165c624cb79254ae9818a456eb6e87a7fd4d56a2352c24ee542d7e nvidia/cuda_cupti/lib/libcupti.so.12"
)
# The rest of the CUDA 12.1 runtime that torch==2.1.0 pins (cuda variant only).
CUDA_WHEELS=(
  "nvidia-cuda-nvrtc-cu12==12.1.105 nvidia_cuda_nvrtc_cu12-12.1.105-py3-none-manylinux1_x86_64.whl 339b385f50c309763ca65456ec75e17bbefcbbf2893f462cb8b90584cd27a1c2"
  "nvidia-cudnn-cu12==8.9.2.26 nvidia_cudnn_cu12-8.9.2.26-py3-none-manylinux1_x86_64.whl 5ccb288774fdfb07a7e7025ffec286971c06d8d7b4fb162525334616d7629ff9"
  "nvidia-cublas-cu12==12.1.3.1 nvidia_cublas_cu12-12.1.3.1-py3-none-manylinux1_x86_64.whl ee53ccca76a6fc08fb9701aa95b6ceb242cdaab118c3bb152af4e579af792728"
  "nvidia-cufft-cu12==11.0.2.54 nvidia_cufft_cu12-11.0.2.54-py3-none-manylinux1_x86_64.whl 794e3948a1aa71fd817c3775866943936774d1c14e7628c74f6f7417224cdf56"
  "nvidia-curand-cu12==10.3.2.106 nvidia_curand_cu12-10.3.2.106-py3-none-manylinux1_x86_64.whl 9d264c5036dde4e64f1de8c50ae753237c12e0b1348738169cd0f8a536c0e1e0"
  "nvidia-cusolver-cu12==11.4.5.107 nvidia_cusolver_cu12-11.4.5.107-py3-none-manylinux1_x86_64.whl 8a7ec542f0412294b15072fa7dab71d31334014a69f953004ea7a118206fe0dd"
  "nvidia-cusparse-cu12==12.1.0.106 nvidia_cusparse_cu12-12.1.0.106-py3-none-manylinux1_x86_64.whl f3b50f42cf363f86ab21f720998517a659a48131e8d538dc02f8768237bd884c"
  "nvidia-nccl-cu12==2.18.1 nvidia_nccl_cu12-2.18.1-py3-none-manylinux1_x86_64.whl 1a6c4acefcbebfa6de320f412bf7866de856e786e0462326ba1bac40de0b5e71"
  "nvidia-nvtx-cu12==12.1.105 nvidia_nvtx_cu12-12.1.105-py3-none-manylinux1_x86_64.whl dc21cf308ca5691e7c04d962e213f8a4aa9bbfa23d95412f452254c2caeb09e5"
  "nvidia-nvjitlink-cu12==12.3.101 nvidia_nvjitlink_cu12-12.3.101-py3-none-manylinux1_x86_64.whl 64335a8088e2b9d196ae8665430bc6a2b7e6ef2eb877a9c735c804bd4ff6467c"
)

# gloo's headers, which c10d's ProcessGroupGloo.hpp includes and the torch
# wheel does not ship (internal/dist compiles against them; the code is in
# libtorch_cpu.so). Debian bookworm's libgloo-dev, gloo of 2022-05-18: the
# shim only holds a shared_ptr<gloo::transport::Device> made by c10d itself,
# so no gloo struct layout is compiled into it (internal/dist/doc.go).
# package, version, sha256 of the .deb.
GLOO_DEB=(libgloo-dev 0.0~git20220518.5b14351-3 80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299)
GLOO_INCLUDE=$KFLLM_CACHE/gloo-${GLOO_DEB[1]//\~/_}/include

lt_log() { echo "libtorch: $*" >&2; }

# install_gloo_headers: GLOO_INCLUDE/gloo/*.h from the pinned .deb (apt-get
# download, sha256 checked, dpkg-deb -x), once.
install_gloo_headers() {
  local name=${GLOO_DEB[0]} ver=${GLOO_DEB[1]} sum=${GLOO_DEB[2]}
  local dest; dest=$(dirname "$GLOO_INCLUDE")
  if [ -f "$dest/.complete" ]; then return; fi
  local debs=$KFLLM_CACHE/debs deb
  deb=$debs/${name}_${ver//\~/%7e}_amd64.deb
  mkdir -p "$debs"
  if ! lt_sha256_ok "$deb" "$sum"; then
    lt_log "apt-get download $name=$ver into $debs"
    (cd "$debs" && rm -f "${name}_"*.deb && apt-get download -q "$name=$ver" >&2) ||
      { lt_log "apt-get download $name=$ver failed (run apt-get update?)"; return 1; }
    deb=$(ls "$debs/${name}_"*.deb | head -n1)
    lt_sha256_ok "$deb" "$sum" || { lt_log "sha256 mismatch for $deb (want $sum)"; return 1; }
  fi
  local tmp; tmp=$(mktemp -d "$dest.XXXXXX")
  dpkg-deb -x "$deb" "$tmp/root"
  mv "$tmp/root/usr/include" "$tmp/include"; rm -rf "$tmp/root"
  rm -rf "$dest"; mv "$tmp" "$dest"; touch "$dest/.complete"
  lt_log "gloo headers ($ver) ready in $GLOO_INCLUDE"
}

# CUDA_HEADER_WHEELS: the wheels whose include/ directories c10d's
# ProcessGroupNCCL.hpp needs (nccl.h; cuda_runtime_api.h, cublas_v2.h,
# cusparse.h, cusolverDn.h through ATen/cuda/CUDAContext.h). Spec prefixes
# of TORCH_WHEELS / CUDA_WHEELS / CUDA_HEADER_ONLY_WHEELS entries.
# The CUDA runtime's headers include crt/host_defines.h, which only the
# nvcc wheel ships (its headers are taken, nothing else).
CUDA_HEADER_ONLY_WHEELS=(
  "nvidia-cuda-nvcc-cu12==12.1.105 nvidia_cuda_nvcc_cu12-12.1.105-py3-none-manylinux1_x86_64.whl a0712a05ffd57d9f017580ffcc808b207f7f4ef7a5ca8ac1312318b153739a18"
)
# cuda_fp16.hpp (through nccl.h) includes <nv/target>, libcu++'s target
# macros, which no CUDA 12.1 wheel ships: Debian bookworm's libcu++-dev
# (main) has them; only usr/include/nv is taken. package, version, sha256.
NV_TARGET_DEB=(libcu++-dev 1.8.1-2 76b27664a8b8c67b660c23056fe838080a8c6bf8725154805676f12d672b31c0)
CUDA_HEADER_WHEELS=(nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12 nvidia-cublas-cu12 nvidia-cusparse-cu12 nvidia-cusolver-cu12 nvidia-nccl-cu12)
CUDA_INCLUDE=$KFLLM_CACHE/cuda-headers-12.1-nccl-2.18.1/include

# install_cuda_headers: CUDA_INCLUDE/*.h from the pinned nvidia-*-cu12
# wheels (nvidia/X/include/... -> CUDA_INCLUDE/...), once. internal/dist's
# nccl build (go build -tags nccl) compiles against them with the CUDA
# libtorch's libraries (scripts/images.sh, scripts/check_nccl_build.sh).
install_cuda_headers() {
  local dest want entry spec file sum whl
  dest=$(dirname "$CUDA_INCLUDE")
  if [ -f "$dest/.complete" ]; then return; fi
  mkdir -p "$(dirname "$dest")"
  local tmp; tmp=$(mktemp -d "$dest.XXXXXX")
  for want in "${CUDA_HEADER_WHEELS[@]}"; do
    for entry in "${TORCH_WHEELS[@]}" "${CUDA_WHEELS[@]}" "${CUDA_HEADER_ONLY_WHEELS[@]}"; do
      read -r spec file sum _ <<<"$entry"
      [ "${spec%%==*}" = "$want" ] || continue
      whl=$(lt_wheel "$spec" "$file" "$sum")
      lt_log "extracting the headers of $file"
      python3 - "$whl" "$tmp/include" <<'PY'
import os, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        parts = info.filename.split("/")
        # nvidia/<lib>/include/<rest>
        if len(parts) < 4 or parts[0] != "nvidia" or parts[2] != "include" or info.filename.endswith("/"):
            continue
        if parts[-1] == "__init__.py":
            continue
        dst = os.path.join(out, *parts[3:])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(info) as src, open(dst, "wb") as f:
            f.write(src.read())
PY
    done
  done
  local name=${NV_TARGET_DEB[0]} ver=${NV_TARGET_DEB[1]} debsum=${NV_TARGET_DEB[2]} debs=$KFLLM_CACHE/debs deb
  deb=$debs/${name}_${ver}_all.deb
  mkdir -p "$debs"
  if ! lt_sha256_ok "$deb" "$debsum"; then
    lt_log "apt-get download $name=$ver into $debs"
    (cd "$debs" && rm -f "$deb" && apt-get download -q "$name=$ver" >&2) ||
      { lt_log "apt-get download $name=$ver failed (run apt-get update?)"; return 1; }
    lt_sha256_ok "$deb" "$debsum" || { lt_log "sha256 mismatch for $deb (want $debsum)"; return 1; }
  fi
  dpkg-deb -x "$deb" "$tmp/deb"
  mv "$tmp/deb/usr/include/nv" "$tmp/include/nv"; rm -rf "$tmp/deb"
  rm -rf "$dest"; mv "$tmp" "$dest"; touch "$dest/.complete"
  lt_log "CUDA and NCCL headers ready in $CUDA_INCLUDE"
}

lt_sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# lt_wheel SPEC FILE SHA256: the wheel's path in the cache, downloaded and
# verified if it is not there yet.
lt_wheel() {
  local spec=$1 whl=$KFLLM_CACHE/wheels/$2 sum=$3
  if ! lt_sha256_ok "$whl" "$sum"; then
    lt_log "downloading $spec into $KFLLM_CACHE/wheels"
    mkdir -p "$KFLLM_CACHE/wheels"
    rm -f "$whl"
    python3 -m pip download "$spec" --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux1_x86_64 --implementation cp \
      --progress-bar off -q -d "$KFLLM_CACHE/wheels" >&2
    lt_sha256_ok "$whl" "$sum" || { lt_log "sha256 mismatch for $whl (want $sum)"; return 1; }
  fi
  echo "$whl"
}

# lt_extract WHEEL OUT KEEP: torch/include/... -> OUT/include/..., any kept
# library -> OUT/lib/<basename>. KEEP is a comma-separated list of prefixes;
# "*.so" keeps every shared library.
lt_extract() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys, zipfile
whl, out, keep = sys.argv[1], sys.argv[2], sys.argv[3]
prefixes = tuple(keep.split(","))
skip = ("libtorch_python.so", "libnvfuser_codegen.so")
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        n = info.filename
        if n.endswith("/"):
            continue
        base = os.path.basename(n)
        if keep == "*.so":
            ok = (n.startswith("torch/include/") or ("/lib/" in n and ".so" in base)) and base not in skip
        else:
            ok = n.startswith(prefixes)
        if not ok:
            continue
        rel = n[len("torch/"):] if n.startswith("torch/include/") else "lib/" + base
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(info) as src, open(dst, "wb") as f:
            while b := src.read(1 << 20):
                f.write(b)
PY
}

# install_libtorch VARIANT DEST: DEST/{include,lib} and DEST/.complete.
install_libtorch() {
  local variant=$1 dest=$2 entry spec file sum keep whl
  if [ -f "$dest/.complete" ]; then return; fi
  mkdir -p "$(dirname "$dest")"
  local tmp; tmp=$(mktemp -d "$dest.XXXXXX")
  for entry in "${TORCH_WHEELS[@]}"; do
    read -r spec file sum keep <<<"$entry"
    whl=$(lt_wheel "$spec" "$file" "$sum")
    [ "$variant" = cuda ] && keep="*.so"
    lt_log "extracting $file"
    lt_extract "$whl" "$tmp" "$keep"
  done
  if [ "$variant" = cuda ]; then
    for entry in "${CUDA_WHEELS[@]}"; do
      read -r spec file sum <<<"$entry"
      whl=$(lt_wheel "$spec" "$file" "$sum")
      lt_log "extracting $file"
      lt_extract "$whl" "$tmp" "*.so"
    done
  fi
  rm -rf "$dest"; mv "$tmp" "$dest"; touch "$dest/.complete"
  lt_log "libtorch $TORCH_VERSION ($variant) ready in $dest"
}

# write_link_folder VARIANT LIBDIR DIR: GNU ld inputs named after each
# library that gotch v0.9.1's libtch/lib.go hard-codes with -l.
#   cpu : a linker script holding only a comment resolves -lNAME and adds no
#         DT_NEEDED entry; libtorch.so is INPUT(-ltorch_cpu), so the
#         CUDA-linked umbrella library is never pulled in.
#   cuda: symlinks from the unversioned names to the wheels' libraries
#         (libcudart.so -> libcudart.so.12 ...); libcuda.so (the driver) stays
#         a comment: the NVIDIA container runtime mounts the host's driver.
write_link_folder() {
  local variant=$1 libdir=$2 d=$3 lib
  mkdir -p "$d"
  if [ "$variant" = cpu ]; then
    for lib in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
      lt_write_if_changed "$d/lib$lib.so" "/* kfllm: CPU build, -l$lib intentionally empty (scripts/libtorch.sh) */"
    done
    lt_write_if_changed "$d/libtorch.so" "/* kfllm: CPU build, libtorch = libtorch_cpu (scripts/libtorch.sh) */
INPUT(-ltorch_cpu)"
    return
  fi
  lt_write_if_changed "$d/libcuda.so" "/* kfllm: the driver comes from the host at run time (scripts/libtorch.sh) */"
  for lib in cudart cublas cudnn nvrtc-builtins nvrtc nvToolsExt; do
    local real; real=$(cd "$libdir" && ls "lib$lib.so."* 2>/dev/null | sort | head -n1)
    [ -n "$real" ] || { lt_log "no lib$lib.so.* in $libdir"; return 1; }
    ln -sfn "$libdir/$real" "$d/lib$lib.so"
  done
}

lt_write_if_changed() { # path content
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return; fi
  printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}

# write_env_file VARIANT LIBTORCH LINKDIR FILE [extra lines]: export lines that
# both make (include) and a shell (source) read the same way: every value is
# a single word (include paths go through CPLUS_INCLUDE_PATH, library paths
# through LIBRARY_PATH, which gcc reads, rather than multi-word CGO flags).
write_env_file() {
  local variant=$1 lt=$2 link=$3 file=$4; shift 4
  local body="# generated by scripts/libtorch.sh ($variant); read by the Makefile and by 'source $file'
export LIBTORCH=$lt
export CGO_ENABLED=1
export CGO_CXXFLAGS=-D_GLIBCXX_USE_CXX11_ABI=0
export CGO_LDFLAGS=-Wl,-rpath,$lt/lib
export CPLUS_INCLUDE_PATH=$lt/include:$lt/include/torch/csrc/api/include:$GLOO_INCLUDE
export LIBRARY_PATH=$link:$lt/lib"
  local extra
  for extra in "$@"; do body="$body
$extra"; done
  mkdir -p "$(dirname "$file")"
  lt_write_if_changed "$file" "$body"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -eq 2 ] || { echo "usage: $0 cpu|cuda DEST" >&2; exit 2; }
  case $1 in cpu|cuda) ;; *) echo "libtorch.sh: unknown variant $1 (want cpu or cuda)" >&2; exit 2 ;; esac
  install_libtorch "$1" "$2"
  install_gloo_headers
  write_link_folder "$1" "$2/lib" "$2/link"
  write_env_file "$1" "$2" "$2/link" "$2/env"
fi
