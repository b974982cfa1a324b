// Package langsmith sends traces and feedback to LangSmith.
//
// It is a small client of LangSmith's ingestion API, written for the model
// server: a [Run] tree (one trace per request instance) is built in memory by
// the caller, handed to a [Tracer] when the trace ends, and shipped from a
// background goroutine in batches (POST /runs/multipart, or /runs/batch for
// servers without multipart ingestion). The queue is bounded: when LangSmith
// is slow or down, traces are dropped and counted, never waited for, so a
// LangSmith outage cannot slow or fail a request. Feedback has a bounded
// queue and a sender of its own, so that a flood of feedback (each item
// retried against a dead endpoint) cannot take traces' places; [ParseFeedback]
// checks it at the edge (run id a UUID, sent in canonical form; key a short
// name). [Tracer.Close] flushes for at most TracerOptions.FlushTimeout
// (20 s by default, inside Kubernetes' 30 s termination grace period).
//
// [Baggage] and [MetadataFromBaggage] carry metadata (the UI's signed-in
// user id) from one service to the next in the SDK's distributed-tracing
// header, baggage: langsmith-metadata=<percent-encoded JSON>.
//
// Configuration is read from the environment the way the LangSmith SDK reads
// it ([ConfigFromEnv]): LANGSMITH_* first, then LANGCHAIN_*; tracing is on
// only when *_TRACING_V2 or *_TRACING is "true".
//
// The wire format follows the LangSmith SDK (langsmith/client.py,
// run_trees.py, _internal/_operations.py): run ids are UUIDv7, trace_id is the
// root run's id, dotted_order is "<%Y%m%dT%H%M%S%fZ><run id>" for each run from
// the root down, joined with "."; multipart parts are named post.<id> (the
// run without inputs/outputs), post.<id>.inputs and post.<id>.outputs.
//
// We do not use github.com/langchain-ai/langsmith-go: it is a generated REST
// client that brings OpenTelemetry, gRPC and two LLM SDKs with it, and it has
// no bounded, dropping background queue, which is the part the server needs.
package langsmith
