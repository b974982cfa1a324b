#!/usr/bin/env bash
# setup-browser.sh: installs Debian's chromium for the web UI's browser tests
# (ui/, issue 10). Idempotent: if /usr/bin/chromium is already there it does
# nothing; otherwise it runs `apt-get update` only when the package lists do
# not know chromium yet, then `apt-get install -y chromium fonts-dejavu-core`
# (the font so that screenshots on a bare machine show text, not boxes).
# Runs as root, or through sudo when that is available. KFLLM_CHROMIUM names
# another browser binary to accept instead.
set -euo pipefail

log() { echo "setup-browser: $*" >&2; }

CHROMIUM=${KFLLM_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  log "chromium present at $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found: install Chromium yourself and set KFLLM_CHROMIUM to its path"
  exit 1
fi

as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
  else
    log "not root and no sudo: run 'apt-get install -y chromium' as root"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# Update the lists only when they do not offer a chromium candidate.
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  log "apt-get update"
  "${as_root[@]}" apt-get update -qq
fi
log "apt-get install -y chromium fonts-dejavu-core"
"${as_root[@]}" apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
if [ ! -x /usr/bin/chromium ]; then
  log "chromium was installed but /usr/bin/chromium is missing"
  exit 1
fi
log "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
