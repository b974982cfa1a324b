# syntax=docker/dockerfile:1.7
# The shared base of every kfllm image: the CUDA 12.1 + cuDNN runtime and
# libtorch 2.1.0+cu121. Built once by `make images` (scripts/images.sh); each
# component image is FROM it and adds one binary, so a node pulls the
# multi-gigabyte layers once for all six images.
#
#   target builder : Ubuntu 22.04 (the runtime's own userland) + Go + g++ +
#                    libtorch headers, libraries and link folder in
#                    /opt/libtorch; build/Dockerfile compiles the binaries here.
#   target runtime : the CUDA runtime + /opt/libtorch/lib, non-root, no
#                    compiler, no headers.
#
# Base images are build args pinned by digest in build/bases.env; a build
# without them fails at the FROM line.
ARG CUDA_IMAGE
ARG GO_IMAGE

FROM ${GO_IMAGE} AS go

# libtorch 2.1.0+cu121 from sha256-pinned PyPI wheels (scripts/libtorch.sh):
# python3 only to download and unzip them; none of it reaches the runtime.
FROM ${CUDA_IMAGE} AS libtorch
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/libtorch.sh /tmp/libtorch.sh
RUN --mount=type=cache,target=/root/.cache/kfllm \
    bash /tmp/libtorch.sh cuda /opt/libtorch

FROM ${CUDA_IMAGE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++ git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=go /usr/local/go /usr/local/go
COPY --from=libtorch /opt/libtorch /opt/libtorch
ENV PATH=/usr/local/go/bin:/root/go/bin:$PATH \
    GOTOOLCHAIN=local \
    KFLLM_LIBTORCH_ENV=/opt/libtorch/env

FROM ${CUDA_IMAGE} AS runtime
ARG SOURCE=https://github.com/kfllm/kfllm
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kfllm-base" \
      org.opencontainers.image.description="CUDA 12.1 + cuDNN runtime with libtorch 2.1.0+cu121 for the kfllm images" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Only the shared libraries: the binaries carry an rpath to /opt/libtorch/lib.
COPY --from=libtorch /opt/libtorch/lib /opt/libtorch/lib
# The KFP v2 launcher that wraps the pipeline steps stages artifacts under
# /gcs, /minio and /s3 (kubeflow/pipelines#5673, #10397): a non-root user
# must own them.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot \
 && mkdir -p /gcs /minio /s3 \
 && chown 65532:65532 /gcs /minio /s3
# CUDA's JIT cache goes to /tmp, which stays writable when the root
# filesystem is read-only (the manifests mount an emptyDir there).
ENV HOME=/home/nonroot \
    CUDA_CACHE_PATH=/tmp/.nv/ComputeCache \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /home/nonroot
USER 65532:65532
