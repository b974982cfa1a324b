// Package kserve holds the KServe V1 request and response bodies as kfllm
// speaks them (docs/design.md §6): the model server (internal/server)
// writes them and the web UI (ui/server) sends and reads them, so that the
// two cannot drift apart, as ollama's api package is shared by its server
// and its clients.
//
// It is types only, with no dependencies beyond the standard library; the
// server's strict decoding (unknown parameters refused, a bare string as a
// question) lives with the server and fills these types.
package kserve
