#!/usr/bin/env bash
# images.sh build|push|check|lock: the kfllm images, daemonless.
#
#   build  fetch the inputs, then assemble the shared base and one image per
#          component into OCI layouts, $IMAGES_OUT/base and $IMAGES_OUT/NAME
#          (go run ./build/images build; package internal/image):
#            - the Debian packages of build/debian.lock (apt-get download,
#              sha256-verified), the userland: glibc, libstdc++, libgcc_s,
#              CA certificates, time zones;
#            - libtorch 2.1.0 of IMAGE_FLAVOR (cuda: with the CUDA 12.1
#              runtime and NCCL 2.18.1; cpu) from the sha256-pinned wheels of
#              scripts/libtorch.sh; the cuda flavour builds with the tag
#              nccl (internal/dist's ProcessGroupNCCL);
#            - each component's binary, linked with run path /opt/libtorch/lib.
#   push   push the layouts to $IMAGE_REGISTRY/kfllm-NAME:$IMAGE_TAG,
#          credentials from the Docker config file; prints NAME REF@DIGEST and
#          writes them to $IMAGES_OUT/pushed.txt.
#   check  every DT_NEEDED of every ELF file in each image resolves inside
#          it (libcuda.so.1 excepted: the NVIDIA container runtime mounts the
#          driver), then the image and layer sizes.
#   lock   re-pin build/debian.lock to apt's current candidates.
#
# Environment: IMAGE_FLAVOR (cuda, the default, or cpu), IMAGE_REGISTRY
# (default ghcr.io/kfllm), IMAGE_TAG (default dev), IMAGES (the component
# names; the Makefile passes the image entries of components.txt), IMAGES_OUT
# (default out/images), KFLLM_CACHE (default ~/.cache/kfllm).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/kfllm}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
IMAGE_FLAVOR="${IMAGE_FLAVOR:-cuda}"
IMAGES="${IMAGES:-}"
IMAGES_OUT="${IMAGES_OUT:-out/images}"
KFLLM_CACHE="${KFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfllm}"
LOCK=build/debian.lock
SOURCE_URL="${SOURCE_URL:-https://github.com/kfllm/kfllm}"
GO="${GO:-go}"

say() { echo "images: $*" >&2; }
die() { say "$*"; exit "${2:-2}"; }

check_names() {
	[[ -n "$IMAGES" ]] || die "IMAGES is empty: run through make (it passes the image entries of components.txt)"
	[[ "$IMAGE_REGISTRY" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$ ]] ||
		die "IMAGE_REGISTRY=$IMAGE_REGISTRY is not a registry/repository prefix (e.g. ghcr.io/you)"
	[[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG=$IMAGE_TAG is not a valid tag"
	case $IMAGE_FLAVOR in cpu | cuda) ;; *) die "IMAGE_FLAVOR=$IMAGE_FLAVOR: want cuda or cpu" ;; esac
	PKGS=$(packages)
}

images_tool() { "$GO" run ./build/images "$@"; }

# fetch_debs: the lock's .deb files in $KFLLM_CACHE/debs (internal/image
# checks each sha256 against the lock when it reads them).
fetch_debs() {
	local dir=$KFLLM_CACHE/debs name version arch sum file want=()
	mkdir -p "$dir"
	while read -r name version arch sum; do
		[[ -z "$name" || "$name" == \#* ]] && continue
		file="${name}_${version//:/%3a}_${arch}.deb"
		if [[ ! -f "$dir/$file" ]] || [[ "$(sha256sum "$dir/$file" | cut -d' ' -f1)" != "$sum" ]]; then
			rm -f "$dir/$file"
			want+=("$name=$version")
		fi
	done <"$LOCK"
	[[ ${#want[@]} -eq 0 ]] && return
	command -v apt-get >/dev/null || die "apt-get not found: the image userland comes from Debian 12 packages (build/debian.lock); build on Debian 12 or put the .deb files in $dir" 127
	say "apt-get download ${want[*]}"
	(cd "$dir" && apt-get download "${want[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
		die "apt-get download failed (run apt-get update; a version that left the archive needs snapshot.debian.org or scripts/images.sh lock)" 1
}

# libtorch_env: the libtorch install of the flavour and the cgo settings
# that link the binaries against it with run path /opt/libtorch/lib.
libtorch_env() {
	# shellcheck source=scripts/libtorch.sh
	source scripts/libtorch.sh
	if [[ $IMAGE_FLAVOR == cpu ]]; then
		LT=$KFLLM_CACHE/libtorch-$TORCH_VERSION
		install_libtorch cpu "$LT"
		LINK=$ROOT/.kfllm/link # setup.sh's, so the build cache is shared with make build
		write_link_folder cpu "$LT/lib" "$LINK"
	else
		LT=$KFLLM_CACHE/libtorch-$TORCH_VERSION-cuda
		install_libtorch cuda "$LT"
		LINK=$LT/link
		write_link_folder cuda "$LT/lib" "$LINK"
	fi
	export CGO_ENABLED=1 CGO_CXXFLAGS=-D_GLIBCXX_USE_CXX11_ABI=0 CGO_LDFLAGS=-Wl,-rpath,/opt/libtorch/lib
	export LIBRARY_PATH=$LINK:$LT/lib
	# Both flavours' headers come from the same torch wheel: one include
	# path keeps gotch's C++ (minutes to compile) in Go's build cache for both.
	local inc=$KFLLM_CACHE/libtorch-$TORCH_VERSION/include
	[[ -d $inc ]] || inc=$LT/include
	install_gloo_headers # c10d's ProcessGroupGloo.hpp includes gloo's (internal/dist)
	export CPLUS_INCLUDE_PATH=$inc:$inc/torch/csrc/api/include:$GLOO_INCLUDE
	TAGS=""
	if [[ $IMAGE_FLAVOR == cuda ]]; then
		# internal/dist's ProcessGroupNCCL (build tag nccl) needs nccl.h and
		# the CUDA runtime's headers (scripts/check_nccl_build.sh checks
		# this build without a GPU).
		install_cuda_headers
		CPLUS_INCLUDE_PATH=$CPLUS_INCLUDE_PATH:$CUDA_INCLUDE
		TAGS=nccl
	fi
}

# packages: the main package of each name, components/NAME or NAME.
packages() {
	local c
	for c in $IMAGES; do
		if [[ -d components/$c ]]; then echo "./components/$c"; elif [[ -d $c ]]; then echo "./$c"; else
			die "no main package for image $c (components/$c or $c)"
		fi
	done
}

build() {
	check_names
	local start=$SECONDS bin=out/images-bin/$IMAGE_FLAVOR
	fetch_debs
	libtorch_env
	mkdir -p "$bin"
	say "go build ($IMAGE_FLAVOR): $IMAGES"
	# -trimpath, no build id, no VCS stamp: the binaries depend on the
	# sources alone (the revision goes in the image label).
	local torch=() plain=() p
	local deps
	for p in $PKGS; do
		# Not "go list | grep -q": under pipefail, grep's early exit can
		# kill go list with SIGPIPE and file a torch binary as plain
		# (then linked without the CUDA libraries or the nccl tag).
		deps=$("$GO" list -deps "$p")
		if grep -qx github.com/sugarme/gotch/libtch <<<"$deps"; then torch+=("$p"); else plain+=("$p"); fi
	done
	[[ ${#plain[@]} -eq 0 ]] || "$GO" build -trimpath -buildvcs=false -ldflags "-s -w -buildid=" -o "$bin/" "${plain[@]}"
	if [[ ${#torch[@]} -gt 0 ]]; then
		local ext=""
		# The CUDA libraries must stay DT_NEEDED although no symbol of them
		# is referenced: they register the CUDA kernels when loaded, and
		# gcc's default --as-needed would drop them (CUDA then silently
		# unavailable), as PyTorch's C++ docs warn. Given to the external
		# linker only, so gotch's C++ stays in the build cache.
		[[ $IMAGE_FLAVOR == cuda ]] && ext=" '-extldflags=-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed'"
		"$GO" build -tags "$TAGS" -trimpath -buildvcs=false -ldflags "-s -w -buildid=$ext" -o "$bin/" "${torch[@]}"
	fi
	local created rev
	created=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
	rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	images_tool build --flavor "$IMAGE_FLAVOR" --libtorch "$LT" --bin "$bin" --names "$IMAGES" \
		--lock "$LOCK" --debs "$KFLLM_CACHE/debs" --cache "$KFLLM_CACHE/images" --out "$IMAGES_OUT" \
		--tag "$IMAGE_TAG" --source "$SOURCE_URL" --revision "$rev" --version "$IMAGE_TAG" --created "$created" \
		--digests "$IMAGES_OUT/digests.txt"
	say "built in $((SECONDS - start))s: $IMAGES_OUT/{base,${IMAGES// /,}} ($IMAGE_FLAVOR); digests in $IMAGES_OUT/digests.txt"
}

push() {
	check_names
	images_tool push --out "$IMAGES_OUT" --names "$IMAGES" --registry "$IMAGE_REGISTRY" --tag "$IMAGE_TAG" \
		--digests "$IMAGES_OUT/pushed.txt"
}

check() {
	check_names
	local c tmp
	# Each component image holds the base's files and its binary, so the
	# base needs no check of its own. Unpacked into a temporary directory:
	# a CUDA image is 4.3 GB on disk.
	for c in $IMAGES; do
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/kfllm-check-XXXXXX")
		images_tool check --layout "$IMAGES_OUT/$c" --rootfs-cache "$tmp" --allow libcuda.so.1 || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	done
	images_tool sizes --out "$IMAGES_OUT" --names "$IMAGES"
}

lock() {
	local tmp name
	tmp=$(mktemp "$LOCK.XXXXXX")
	grep '^#' "$LOCK" >"$tmp"
	for name in $(grep -v '^#' "$LOCK" | awk '{print $1}'); do
		apt-cache show --no-all-versions "$name" |
			awk '/^Package:/{n=$2}/^Version:/{v=$2}/^Architecture:/{a=$2}/^SHA256:/{s=$2} END{print n, v, a, s}' >>"$tmp"
	done
	mv "$tmp" "$LOCK"
	say "$LOCK re-pinned"
}

case "${1:-build}" in
build) build ;;
push) push ;;
check) check ;;
lock) lock ;;
*) die "usage: $0 build|push|check|lock" ;;
esac
