// Package serve wires up the model server: the backend (our own model, or
// a hosted one through internal/remote), the LangSmith tracer, the one
// prompt template (internal/prompt) and the HTTP server (internal/server),
// listening at once and loading the model in the background.
//
// It links no libtorch: serving's main hands it the local model's loader
// (engine.Load), so that the cgo package internal/engine only runs the
// model, and this wiring builds and tests without it.
package serve
