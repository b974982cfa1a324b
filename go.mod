module github.com/kfllm/kfllm

go 1.26.0

require github.com/chromedp/chromedp v0.23.0 // web UI browser tests (ui/server): drives headless Debian chromium over CDP from go test

require (
	dario.cat/mergo v1.0.2 // indirect
	github.com/Microsoft/go-winio v0.6.2 // indirect
	github.com/ProtonMail/go-crypto v1.1.6 // indirect
	github.com/chromedp/cdproto v0.159.0 // ui/server tests: chromedp's DevTools protocol types (viewport, console events)
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/cyphar/filepath-securejoin v0.6.1 // indirect
	github.com/dlclark/regexp2 v1.12.0 // tokenizer: HF Split patterns need lookahead (?!\S), which Go regexp lacks
	github.com/emirpasic/gods v1.18.1 // indirect
	github.com/go-git/gcfg v1.5.1-0.20230307220236-3a3c6141e376 // indirect
	github.com/go-git/go-billy/v5 v5.9.2 // indirect
	github.com/go-git/go-git/v5 v5.19.3 // internal/gitremote: commit and push a model dir to a git remote without a git binary
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/golang/groupcache v0.0.0-20241129210726-2c02b8208cf8 // indirect
	github.com/google/renameio/v2 v2.0.2 // the small files we write (configs, tokenizer files, model cards, pipeline YAML, Hub refs, run-cache entries): temp file, fsync, rename, so no reader sees half a file
	github.com/google/uuid v1.6.0 // langsmith: UUIDv7 run ids, as the LangSmith SDK makes them
	github.com/gorilla/mux v1.8.1 // serving: KServe routes with {name} and :predict path patterns
	github.com/jbenet/go-context v0.0.0-20150711004518-d14ea06fba99 // indirect
	github.com/kevinburke/ssh_config v1.2.0 // indirect
	github.com/kubeflow/pipelines/api v0.0.0-20250102152816-873e9dedd766 // internal/kfp: the KFP v2 IR (pipelinespec protos) that pipeline compile emits
	github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20240403164522-8b2a099e8c9f // internal/kfp: platforms.kubernetes (secretAsEnv) protos
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/pjbgf/sha1cd v0.7.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // serving: /metrics (Prometheus registry, counters, histograms)
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/schollz/progressbar/v2 v2.15.0 // indirect
	github.com/sergi/go-diff v1.3.2-0.20230802210424-5b0b94c5c0d3 // indirect
	github.com/skeema/knownhosts v1.3.1 // indirect
	github.com/stretchr/testify v1.12.1 // tests: assert/require where a table of expectations reads better
	github.com/sugarme/gotch v0.9.1 // libtorch from Go: tensors, autograd and ops for the model engine and training (cgo; kept out of the light packages)
	github.com/sugarme/regexpset v0.0.0-20200920021344-4d4ec8eaf93c // indirect
	github.com/sugarme/tokenizer v0.3.0 // tokenizer: the HF tokenizer pipeline we build on (interfaces, normalizers, decoders)
	github.com/tmc/langchaingo v0.1.14 // serving: prompt template, llms.Model, string output parser (the chain), HF/OpenAI backends
	github.com/xanzy/ssh-agent v0.3.3 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.42.0 // tokenizer: Unicode normalization forms (NFC/NFKC) that HF normalizers apply
	golang.org/x/time v0.16.0 // ui: per-client token buckets (rate.Limiter: Reserve, Retry-After from the delay), the well-kept implementation rather than our own
	gopkg.in/warnings.v0 v0.1.2 // indirect
)

require (
	github.com/asaskevich/govalidator v0.0.0-20230301143203-a9d515a09cc2 // indirect
	github.com/go-openapi/analysis v0.23.0 // indirect
	github.com/go-openapi/errors v0.22.0 // indirect
	github.com/go-openapi/jsonpointer v0.21.0 // indirect
	github.com/go-openapi/jsonreference v0.21.0 // indirect
	github.com/go-openapi/loads v0.22.0 // indirect
	github.com/go-openapi/runtime v0.24.2 // internal/kfp/remote: the transport of KFP's generated v2beta1 client
	github.com/go-openapi/spec v0.21.0 // indirect
	github.com/go-openapi/strfmt v0.23.0 // internal/kfp/remote: formats used by KFP's generated v2beta1 client
	github.com/go-openapi/swag v0.23.0 // indirect
	github.com/go-openapi/validate v0.24.0 // indirect
	github.com/google/go-cmp v0.7.0 // tests: cmp.Diff on golden files
	github.com/josharian/intern v1.0.0 // indirect
	github.com/kubeflow/pipelines v0.0.0-20231208180049-c5658f09ec38 // internal/kfp: backend/api v2beta1 go_http_client for pipeline run
	github.com/mailru/easyjson v0.7.7 // indirect
	github.com/mitchellh/mapstructure v1.5.0 // indirect
	github.com/oklog/ulid v1.3.1 // indirect
	github.com/opentracing/opentracing-go v1.2.0 // indirect
	go.mongodb.org/mongo-driver v1.14.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250122153221-138b5a5a4fd4 // indirect
	google.golang.org/protobuf v1.36.12 // internal/kfp: protojson for the KFP IR (pipelinespec, kubernetes platform protos)
	gopkg.in/yaml.v2 v2.4.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // internal/modelcard: the model card YAML front matter, fields in the Hub's order; internal/kfp: the compiled pipeline YAML (sorted keys, YAML 1.1-safe floats)
	sigs.k8s.io/yaml v1.6.0 // indirect
)

require (
	github.com/andybalholm/brotli v1.1.1 // indirect
	github.com/gofrs/flock v0.13.2 // internal/hub: cross-process lock per file in the snapshot cache
	github.com/klauspost/compress v1.20.1 // internal/image: gzip for the image layers (deterministic, faster than compress/gzip) and zstd for .deb members
	github.com/parquet-go/bitpack v1.0.0 // indirect
	github.com/parquet-go/jsonlite v1.0.0 // indirect
	github.com/parquet-go/parquet-go v0.32.0 // internal/records: Parquet record reader (maintained pure-Go parquet)
	github.com/pierrec/lz4/v4 v4.1.21 // indirect
	github.com/twpayne/go-geom v1.6.1 // indirect
)

require (
	github.com/Masterminds/goutils v1.1.1 // indirect
	github.com/Masterminds/semver/v3 v3.2.0 // indirect
	github.com/Masterminds/sprig/v3 v3.2.3 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.0.1 // indirect
	github.com/goph/emperror v0.17.2 // indirect
	github.com/huandu/xstrings v1.3.3 // indirect
	github.com/imdario/mergo v0.3.13 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/mitchellh/copystructure v1.2.0 // indirect
	github.com/mitchellh/reflectwalk v1.0.2 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nikolalohinski/gonja v1.5.3 // indirect
	github.com/patrickmn/go-cache v2.1.0+incompatible // indirect
	github.com/pelletier/go-toml/v2 v2.0.9 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/pkoukk/tiktoken-go v0.1.6 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/schollz/progressbar/v3 v3.19.1 // internal/train: the training progress bar on a terminal (step, loss, lr, tokens/s, ETA)
	github.com/shopspring/decimal v1.2.0 // indirect
	github.com/sirupsen/logrus v1.9.4 // indirect
	github.com/spf13/cast v1.4.1 // indirect
	github.com/yargevad/filepathx v1.0.0 // indirect
	golang.org/x/exp v0.0.0-20260410095643-746e56fc9e2f // indirect
	golang.org/x/term v0.46.0 // internal/train: a progress bar on a terminal, plain lines otherwise
)

require (
	github.com/google/go-containerregistry v0.22.1 // internal/image: OCI image layouts, manifests and configs (mutate, layout), push with Docker-config credentials (remote, authn), the in-process registry of its tests
	github.com/ulikunitz/xz v0.5.17 // internal/image: Debian packages' data.tar.xz, read without dpkg
)

require (
	github.com/docker/cli v29.7.2+incompatible // indirect
	github.com/docker/docker-credential-helpers v0.9.3 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sync v0.23.0 // indirect
)

// The KFP root module (backend/api/v2beta1/go_http_client for pipeline run)
// requires k8s.io/kubernetes v0.17.9, which does not exist; KFP's own go.mod
// replaces it the same way.
replace k8s.io/kubernetes => k8s.io/kubernetes v1.11.1
