// Package hub is a client for the Hugging Face Hub's HTTP API.
//
// Client.Do is the core every call goes through: it attaches the token
// (as "Authorization: Bearer", to the Hub's own host only, and drops it when
// a redirect leaves that host), retries 408, 429 and, for idempotent
// requests, 5xx and transport errors with exponential backoff or as
// Retry-After says, and turns error responses into *Error values that unwrap
// to sentinels (ErrRepoNotFound, ErrRevisionNotFound, ErrEntryNotFound,
// ErrGatedRepo, ...) read from the Hub's X-Error-Code header.
//
// The download side follows the routes huggingface_hub uses:
//
//	GET /api/{models|datasets}/{repo}/revision/{rev}      -> commit sha
//	GET /api/{models|datasets}/{repo}/tree/{rev}/{path}   -> file listing, paginated by Link rel="next"
//	GET /api/datasets/{repo}/parquet[/{subset}/{split}]   -> parquet conversion
//	GET /{repo}/resolve/{rev}/{path}                       -> a model file
//	GET /datasets/{repo}/resolve/{rev}/{path}              -> a dataset file
//
// DownloadFile streams a file to disk with resume (HTTP Range, also after a
// stalled connection), a size limit and a sha256; Snapshot copies a
// repository at a pinned commit into a cache laid out as huggingface_hub's
// (models--OWNER--NAME/{blobs,snapshots,refs}), so Python tools can share
// it, with a lock file per blob so that processes may fetch at once.
// ParseRef reads a model reference (DIR or OWNER/NAME[@rev]: --tokenizer,
// --base-model, --model-id) and Ref.Resolve turns it into a local
// directory, fetching ModelFiles (or TokenizerFiles) at exactly that
// revision. The upload side (preupload, LFS, commit) builds on the same
// Client.
//
// The package reads no environment variables itself; EnvOptions (and
// FromEnv, its Client) is the one place a binary turns HF_TOKEN and
// HF_ENDPOINT into a Client, which the other packages take.
package hub
