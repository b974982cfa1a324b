#!/bin/sh
# Upload memory benchmark: a sparse 2 GiB model.safetensors goes through
# hub.UploadFolder to the fake Hub (multipart, 64 MiB parts). Reports the
# peak Go heap and peak RSS of the process; both must stay flat (tens of
# MiB) whatever the file size. Takes about 30 s on 2 cores.
set -eu
cd "$(dirname "$0")/.."
exec go test -run '^$' -bench 'UploadSparse2GB' -benchtime 1x ./internal/hub/
