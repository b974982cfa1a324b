// Package hubtest runs a fake Hugging Face Hub on loopback for tests: the
// documented routes of the Hub's HTTP API (repository info by revision, the
// tree listing paginated by Link headers, the parquet conversion listing,
// file resolution with LFS files redirected to a CDN host), in-memory
// repositories, a record of every request, and injectable faults (error
// statuses with Retry-After, connections dropped mid-body).
//
// The real Hub is not reachable from the test machines; the routes and
// headers follow huggingface_hub's client (hf_api.py, file_download.py) and
// the Hub's API documentation.
package hubtest
