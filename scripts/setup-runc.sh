#!/usr/bin/env bash
# setup-runc.sh: installs Debian's runc, which internal/rehearse runs the CPU
# images under (make rehearse; TestRehearsalTiny in make test). Idempotent:
# if runc is already on PATH it does nothing; otherwise it runs `apt-get
# update` only when the package lists do not know runc yet, then `apt-get
# install -y runc`. runc runs containers as root only, so this runs as root.
set -euo pipefail

log() { echo "setup-runc: $*" >&2; }

if command -v runc >/dev/null 2>&1; then
  log "runc present at $(command -v runc) ($(runc --version 2>/dev/null | head -1 || echo 'version unknown'))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "not root: runc runs containers as root only; run as root"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found: install runc yourself (it must be on PATH)"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Update the lists only when they do not offer a runc candidate.
if ! apt-cache policy runc 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  log "apt-get update"
  apt-get update -qq
fi
log "apt-get install -y runc"
apt-get install -y -qq runc >/dev/null
command -v runc >/dev/null 2>&1 || { log "runc was installed but is not on PATH"; exit 1; }
log "installed $(runc --version | head -1)"
