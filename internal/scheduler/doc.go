// Package scheduler shares one language model among concurrent requests by
// continuous batching: a single loop runs one batched decoding step for
// every active sequence, admits queued requests between steps (prefilling
// them), streams each sequence's new text to its caller, and retires
// sequences that finish (EOS, token budget, stop string, caller gone or out
// of time) without waiting for the rest of the batch.
//
// The model is reached through the small [Engine] interface (declared here,
// by its consumer) so that the scheduler and the HTTP layer above it build
// and test without libtorch; internal/engine adapts internal/model to it.
// Waiting requests sit in a bounded queue; when it is full, Generate fails
// at once with [ErrQueueFull] so that the server can answer 503 with
// Retry-After instead of piling up work.
package scheduler
