// Package safetensors reads and writes the Hugging Face safetensors format:
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian tensor bytes.
//
// Open maps a file into memory and validates the whole header before handing
// out zero-copy views of the tensor bytes, so loading a model never holds a
// second copy of the weights on the Go heap; a loader that copies each tensor
// elsewhere (into libtorch) calls Release after each copy, so that the file's
// pages and the copies are not resident at once. OpenDir does the same for a
// model directory with either model.safetensors or a sharded checkpoint
// described by model.safetensors.index.json. WriteFile and Create write
// files the Python library reads (byte-identical to what it writes for the
// same tensors and at most one metadata key), atomically: a temporary file in
// the same directory is synced and renamed into place, so a half-written file
// never looks complete.
//
// Every fault in a file is reported as an error that names the file and the
// fault and wraps ErrMalformed; no input makes this package panic.
//
// The package is pure Go (no cgo, no libtorch), so the tokenize component and
// Python-free tests can use it.
//
// github.com/nlpodyssey/safetensors was considered and not used: it parses a
// []byte already in memory, serializes only from a map held in memory at once
// (no per-tensor streaming, no atomic commit), silently keeps the last of
// duplicate tensor names, has no sharded-index support and returns unwrappable
// string errors, so mmap, streaming, atomic writes and error wrapping would all
// have had to be built around it anyway.
package safetensors
