# kfllm: fine-tune and serve a causal LM on Kubeflow, in Go. See README.md.
# `make test` and `make demo` run `setup` themselves; setup is cached and
# idempotent. The env file it writes (.kfllm/env) holds the cgo flags for
# libtorch; it is included here and can be sourced by a shell.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV_FILE := .kfllm/env
-include $(ENV_FILE)

GO ?= go
BIN := bin
# The programs, named once in components.txt: NAME DIR image|tool light|cgo.
COMPONENTS_FILE := components.txt
COMMANDS := $(shell awk '!/^\#/ && NF { print $$1 }' $(COMPONENTS_FILE))
COMMAND_DIRS := $(shell awk '!/^\#/ && NF { print "./" $$2 }' $(COMPONENTS_FILE))
STATICCHECK_VERSION := v0.8.2
NAMESPACE ?= kubeflow-user-example-com
IMAGE_REGISTRY ?= ghcr.io/kfllm
IMAGE_TAG ?= dev

# Packages that link libtorch through gotch (cgo) run without -race; the rest
# run with it, internal/rehearse excepted: TestRehearsalTiny unpacks the six
# CPU images' root file systems (about 500 MB each) through compress/gzip,
# which -race slowed past go test's 10-minute limit (97 s without it).
TORCH_PKGS = $(shell $(GO) list -f '{{if .Deps}}{{range .Deps}}{{if eq . "github.com/sugarme/gotch/libtch"}}{{$$.ImportPath}}{{"\n"}}{{end}}{{end}}{{end}}' ./... | sort -u)
NORACE_PKGS = github.com/kfllm/kfllm/internal/rehearse
LIGHT_PKGS = $(filter-out $(TORCH_PKGS) $(NORACE_PKGS),$(shell $(GO) list ./...))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

.PHONY: setup
setup: ## install libtorch 2.1.0 and the test data (cached, idempotent)
	@bash scripts/setup.sh

.PHONY: ui-screenshots
ui-screenshots: setup ## redraw docs/ui-desktop.png and docs/ui-phone.png in headless chromium
	$(GO) test -count=1 -run TestScreenshots ./ui/server -args -update

.PHONY: build
build: setup ## build every command into bin/
	@$(MAKE) --no-print-directory build-only

.PHONY: build-only
build-only:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(COMMAND_DIRS) ./demo

.PHONY: test
test: setup ## setup, the CPU images as root (rehearse-images), gofmt check, go vet, go test (-race where cgo allows, internal/rehearse excepted)
	@$(MAKE) --no-print-directory rehearse-images
	@$(MAKE) --no-print-directory check

.PHONY: check
check: fmt-check vet
	cd manifests/validate && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(GO) test -race -count=1 $(LIGHT_PKGS)
	$(GO) test -count=1 $(TORCH_PKGS) $(NORACE_PKGS)

.PHONY: fmt-check
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^testdata/')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet:
	$(GO) vet ./...

.PHONY: lint
lint: setup ## vet and staticcheck (pinned)
	@$(MAKE) --no-print-directory vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: bench
bench: setup ## go benchmarks
	@$(MAKE) --no-print-directory bench-only

.PHONY: bench-only
bench-only:
	$(GO) test -run '^$$' -bench . -benchmem ./...

PIPELINE_YAML ?= out/kfllm-finetune.yaml

.PHONY: compile-pipeline
compile-pipeline: ## compile the pipeline to $(PIPELINE_YAML) (KFP v2 IR + platforms.kubernetes; COMPILE_ARGS="--node-selector L=V --toleration K=V:NoSchedule --checkpoint-claim NAME": the scheduling flags set the parameters' defaults)
	@mkdir -p $(dir $(PIPELINE_YAML))
	$(GO) run ./pipeline compile -o $(PIPELINE_YAML) --image-registry $(IMAGE_REGISTRY) --image-tag $(IMAGE_TAG) $(COMPILE_ARGS)

.PHONY: run-pipeline
run-pipeline: compile-pipeline ## upload the pipeline to KFP and start a run (HF_REPO, KFP_HOST, NAMESPACE; RUN_ARGS="--wait"; finetune's GPU pool: ACCELERATOR, NODE_SELECTOR='{"L":"V"}', TOLERATIONS='[{...}]')
	NAMESPACE=$(NAMESPACE) PIPELINE_YAML=$(PIPELINE_YAML) ACCELERATOR='$(ACCELERATOR)' NODE_SELECTOR='$(NODE_SELECTOR)' TOLERATIONS='$(TOLERATIONS)' bash scripts/run-pipeline.sh $(RUN_ARGS)

.PHONY: create-secret
create-secret: ## hf-secret from HF_TOKEN, and langsmith-secret from LANGCHAIN_* if LANGCHAIN_API_KEY is set (NAMESPACE)
	@NAMESPACE=$(NAMESPACE) bash scripts/create-secret.sh
	@NAMESPACE=$(NAMESPACE) bash scripts/create-langsmith-secret.sh

.PHONY: images push-images check-images api-deploy ui-deploy undeploy validate-manifests
# The component images: every command but the pipeline compiler.
IMAGES := $(shell awk '!/^\#/ && $$3 == "image" { print $$1 }' $(COMPONENTS_FILE))
IMAGE_FLAVOR ?= cuda
IMAGES_OUT ?= out/images
IMAGES_ENV = IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) IMAGE_FLAVOR=$(IMAGE_FLAVOR) IMAGES="$(IMAGES)" IMAGES_OUT=$(IMAGES_OUT)

images: ## OCI layouts $(IMAGES_OUT)/{base,NAME} without a Docker daemon (IMAGE_FLAVOR=cuda|cpu, IMAGE_TAG)
	@$(IMAGES_ENV) bash scripts/images.sh build

push-images: ## push the layouts to IMAGE_REGISTRY/kfllm-NAME:IMAGE_TAG; prints the digests
	@$(IMAGES_ENV) bash scripts/images.sh push

check-images: ## every shared library of every image resolves inside it; image and layer sizes
	@$(IMAGES_ENV) bash scripts/images.sh check

.PHONY: check-nccl-build
check-nccl-build: ## the CUDA images' NCCL build (go build -tags nccl) compiles and links against libtorch 2.1.0+cu121, no GPU needed
	@bash scripts/check_nccl_build.sh

.PHONY: pin-pipeline
pin-pipeline: ## pin the compiled pipeline's images to the digests push-images pushed
	$(GO) run ./build/images pin --pushed $(IMAGES_OUT)/pushed.txt $(PIPELINE_YAML)

REHEARSE_OUT ?= out/rehearse

# TestRehearsalTiny (internal/rehearse) runs the CPU images under runc, which
# runs containers as root only: as root, make test installs Debian's runc and
# builds the images first; otherwise the test skips and says why.
.PHONY: rehearse-images
rehearse-images: ## as root: Debian's runc and the CPU images in out/rehearse/images (what TestRehearsalTiny runs); otherwise nothing
	@if [ "$$(id -u)" != 0 ]; then \
		echo "rehearse-images: not root, and runc runs containers as root only: no CPU images, TestRehearsalTiny will skip" >&2; \
	else \
		bash scripts/setup-runc.sh && $(MAKE) --no-print-directory images IMAGE_FLAVOR=cpu IMAGES_OUT=$(REHEARSE_OUT)/images; \
	fi

.PHONY: rehearse
rehearse: setup ## the CPU images under runc: the compiled pipeline task by task as KFP's launcher runs it, then serving + UI from the manifests, a question, the browser test (needs root, runc)
	@$(MAKE) --no-print-directory images IMAGE_FLAVOR=cpu IMAGES_OUT=$(REHEARSE_OUT)/images
	$(GO) run ./pipeline compile -o $(REHEARSE_OUT)/pipeline.yaml
	$(GO) run ./build/rehearse --images $(REHEARSE_OUT)/images --work $(REHEARSE_OUT) --names "$(IMAGES)" \
		--pipeline $(REHEARSE_OUT)/pipeline.yaml --manifests manifests \
		--browser-test "$(GO) test -count=1 -v -run ^TestBrowserDeployedUI$$ ./ui/server"

api-deploy: ## InferenceService llm-api serving MODEL_ID=OWNER/NAME[@REV] (a run's commit_sha; default HF_REPO) in NAMESPACE; LORA_ADAPTERS=NAME=OWNER/NAME[@REV],... more adapters
	@NAMESPACE=$(NAMESPACE) TRUST_DOMAIN=$(TRUST_DOMAIN) IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) MODEL_ID=$(MODEL_ID) LORA_ADAPTERS="$(LORA_ADAPTERS)" bash scripts/deploy.sh api-deploy

ui-deploy: ## the web UI llm-ui behind a LoadBalancer in NAMESPACE; prints its address
	@NAMESPACE=$(NAMESPACE) TRUST_DOMAIN=$(TRUST_DOMAIN) IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) bash scripts/deploy.sh ui-deploy

undeploy: ## remove llm-ui and llm-api from NAMESPACE (secrets are kept)
	@NAMESPACE=$(NAMESPACE) bash scripts/deploy.sh undeploy

validate-manifests: ## manifests and deploy scripts checked without a cluster (own Go module)
	cd manifests/validate && $(GO) vet ./... && $(GO) test -count=1 ./...

.PHONY: cluster-test
cluster-test: setup ## the pipeline's workers > 1 against a real etcd + kube-apiserver on loopback (scripts/kubebins.sh builds them once)
	bash scripts/kubebins.sh
	$(GO) test -count=1 -v -run 'TestLaunch' ./internal/distjob

.PHONY: demo
demo: build ## the whole pipeline on this machine, offline, then serve it (DEMO_EXIT=1 exits after one question)
	$(BIN)/demo
