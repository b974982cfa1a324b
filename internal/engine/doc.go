// Package engine backs the model server with our own model: it resolves a
// model directory (a local one, as KServe's storage initializer mounts at
// /mnt/models, or a Hub snapshot through internal/hub), loads the tokenizer
// (internal/tokenizer) and the model (internal/model, on libtorch), and
// runs them under the batching scheduler of internal/scheduler as a
// server.Backend.
//
// It only runs the model: the wiring of serving (backend choice, tracer,
// prompt, HTTP) is internal/serve, to which serving's main hands Load. It
// is the only serving package that links libtorch; internal/serve,
// internal/server and internal/scheduler stay free of it and are tested
// without it.
package engine
