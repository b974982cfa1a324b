#!/usr/bin/env bash
# images.sh build|push|pin: the kfllm CUDA images with docker buildx.
#
#   build  the shared base (build/base.Dockerfile: target builder, then
#          target runtime = ${IMAGE_REGISTRY}/kfllm-base:${IMAGE_TAG}), then
#          one image per component from build/Dockerfile, each FROM that
#          base: ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG} for fetch,
#          tokenize, finetune, upload, serving, ui.
#   push   push the base and the six images (build first).
#   pin    resolve the tags in build/bases.env to their current digests
#          (docker buildx imagetools inspect) and rewrite the file.
#
# Environment: IMAGE_REGISTRY (default ghcr.io/kfllm), IMAGE_TAG (default
# dev), COMPONENTS (default all six), PLATFORM (default linux/amd64).
# The base images come pinned by digest from build/bases.env.
#
# Builds load into the local image store, so the component builds can use
# the base just built: this needs buildx's "docker" driver (the default
# builder). With another driver (docker-container, kubernetes) set
# IMAGE_PUSH=1: each image is then pushed as it is built and pulled back by
# the next build.
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/kfllm}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
PLATFORM="${PLATFORM:-linux/amd64}"
COMPONENTS="${COMPONENTS:-fetch tokenize finetune upload serving ui}"
IMAGE_PUSH="${IMAGE_PUSH:-}"
DOCKER="${DOCKER:-docker}"
BASES="${KFLLM_BASES:-build/bases.env}"
SOURCE_URL="${SOURCE_URL:-https://github.com/kfllm/kfllm}"

say() { echo "images: $*" >&2; }
die() { say "$*"; exit "${2:-2}"; }

need_docker() {
	command -v "$DOCKER" >/dev/null 2>&1 || die "$DOCKER not found; install Docker (https://docs.docker.com/engine/install/) with the buildx plugin" 127
	"$DOCKER" buildx version >/dev/null 2>&1 || die "docker buildx not available; install the buildx plugin (https://github.com/docker/buildx#installing)" 127
	"$DOCKER" info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, may this user use it?)" 1
}

check_names() {
	[[ "$IMAGE_REGISTRY" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$ ]] ||
		die "IMAGE_REGISTRY=$IMAGE_REGISTRY is not a registry/repository prefix (e.g. ghcr.io/you)"
	[[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG=$IMAGE_TAG is not a valid tag"
	local c
	for c in $COMPONENTS; do
		case $c in fetch | tokenize | finetune | upload | serving | ui) ;;
		*) die "COMPONENTS: unknown component $c (want fetch tokenize finetune upload serving ui)" ;;
		esac
	done
}

# read_bases: CUDA_IMAGE and GO_IMAGE from build/bases.env, each NAME:TAG@sha256:<64 hex>.
read_bases() {
	local k v
	while IFS='=' read -r k v; do
		[[ -z "$k" || "$k" == \#* ]] && continue
		[[ "$k" =~ ^[A-Z][A-Z0-9_]*$ ]] || die "$BASES: bad key $k"
		[[ "$v" =~ ^[^@[:space:]]+:[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] ||
			die "$BASES: $k=$v is not pinned as NAME:TAG@sha256:<digest>; run scripts/images.sh pin"
		printf -v "$k" '%s' "$v"
	done <"$BASES"
	[[ -n "${CUDA_IMAGE:-}" && -n "${GO_IMAGE:-}" ]] || die "$BASES must set CUDA_IMAGE and GO_IMAGE"
}

revision() { git rev-parse HEAD 2>/dev/null || echo unknown; }

build() {
	check_names
	read_bases
	need_docker
	local out=(--load) rev base builder c
	if [[ -n "$IMAGE_PUSH" ]]; then out=(--push); fi
	if [[ -z "$IMAGE_PUSH" ]] && [[ "$("$DOCKER" buildx inspect 2>/dev/null | awk '/^Driver:/{print $2; exit}')" != docker ]]; then
		die "the current buildx builder does not use the docker driver, so the component builds cannot see the base it loads; run 'docker buildx use default' or set IMAGE_PUSH=1"
	fi
	rev=$(revision)
	base="$IMAGE_REGISTRY/kfllm-base:$IMAGE_TAG"
	builder="$IMAGE_REGISTRY/kfllm-builder:$IMAGE_TAG"
	local common=(--platform "$PLATFORM" --build-arg "SOURCE=$SOURCE_URL" --build-arg "VERSION=$IMAGE_TAG" --build-arg "REVISION=$rev")
	say "base: $CUDA_IMAGE + libtorch 2.1.0+cu121 -> $base"
	"$DOCKER" buildx build "${common[@]}" -f build/base.Dockerfile \
		--build-arg "CUDA_IMAGE=$CUDA_IMAGE" --build-arg "GO_IMAGE=$GO_IMAGE" \
		--target builder -t "$builder" "${out[@]}" .
	"$DOCKER" buildx build "${common[@]}" -f build/base.Dockerfile \
		--build-arg "CUDA_IMAGE=$CUDA_IMAGE" --build-arg "GO_IMAGE=$GO_IMAGE" \
		--target runtime -t "$base" "${out[@]}" .
	for c in $COMPONENTS; do
		say "$c -> $IMAGE_REGISTRY/kfllm-$c:$IMAGE_TAG"
		"$DOCKER" buildx build "${common[@]}" -f build/Dockerfile \
			--build-arg "BUILDER_IMAGE=$builder" --build-arg "BASE_IMAGE=$base" \
			--target "$c" -t "$IMAGE_REGISTRY/kfllm-$c:$IMAGE_TAG" "${out[@]}" .
	done
	say "built: $base and $(for c in $COMPONENTS; do printf 'kfllm-%s ' "$c"; done)(tag $IMAGE_TAG)"
}

push() {
	check_names
	need_docker
	local c ref
	for ref in "$IMAGE_REGISTRY/kfllm-base:$IMAGE_TAG" $(for c in $COMPONENTS; do echo "$IMAGE_REGISTRY/kfllm-$c:$IMAGE_TAG"; done); do
		"$DOCKER" image inspect "$ref" >/dev/null 2>&1 || die "$ref is not in the local image store; run make images first"
		say "push $ref"
		"$DOCKER" push "$ref"
	done
}

pin() {
	need_docker
	local tmp k v name digest
	tmp=$(mktemp "$BASES.XXXXXX")
	while IFS= read -r line; do
		if [[ "$line" =~ ^([A-Z_]+)=(.+)$ ]]; then
			k=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]} name=${BASH_REMATCH[2]%@*}
			digest=$("$DOCKER" buildx imagetools inspect "$name" --format '{{json .Manifest.Digest}}' | tr -d '"') ||
				{ rm -f "$tmp"; die "cannot resolve $name" 1; }
			[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || { rm -f "$tmp"; die "unexpected digest for $name: $digest" 1; }
			[[ "$v" == "$name@$digest" ]] || say "$k: $name -> $digest"
			line="$k=$name@$digest"
		fi
		printf '%s\n' "$line"
	done <"$BASES" >"$tmp"
	mv "$tmp" "$BASES"
	say "$BASES pinned"
}

case "${1:-build}" in
build) build ;;
push) push ;;
pin) pin ;;
*) die "usage: $0 [build|push|pin]" ;;
esac
