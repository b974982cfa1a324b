// Package server is the HTTP layer of the KServe model server (the serving
// command): KServe V1 and V2 routes and OpenAI-compatible routes over a
// langchaingo chain, `prompt | llm | parser`, traced to LangSmith.
//
// It lives in internal/ rather than in serving/ so that it is importable by
// tests, the load test and the benchmarks, and it does not import gotch: the
// model is reached through langchaingo's llms.Model ([LocalLLM] over the
// batching scheduler of internal/scheduler, whose engine internal/engine
// backs with internal/model), so the route and error tests run without
// libtorch.
//
// # Routes
//
//	GET  /                               {"status":"alive"}
//	GET  /v1/models                      {"models":["NAME", ADAPTER...]}
//	GET  /v1/models/NAME                 {"name":"NAME","ready":true}
//	POST /v1/models/NAME:predict         KServe V1 predict (below)
//	POST /v1/feedback                    user feedback to LangSmith (below)
//	GET  /v2/health/live|ready           {"live":true} / {"ready":bool} (503 while not ready)
//	GET  /v2/models                      {"models":["NAME", ADAPTER...]}
//	GET  /v2/models/NAME[/ready]         V2 metadata / readiness
//	POST /v2/models/NAME/infer           V2 inference with BYTES tensors "question", "context"
//	GET  /openai/v1/models               OpenAI model list
//	POST /openai/v1/completions          OpenAI completions (raw prompt), SSE with "stream":true
//	POST /openai/v1/chat/completions     OpenAI chat completions, SSE with "stream":true
//	GET  /metrics                        Prometheus
//
// NAME is Options.ModelName or one of Options.Adapters (LoRA adapters on
// the same base): a request for an adapter reaches the LLM with
// llms.WithModel(ADAPTER), and its response and trace carry that name.
//
// The server listens at once and loads the model in the background; until
// it is loaded, model routes answer 503 `Model with name NAME is not
// ready.` with Retry-After. Another model name gets 404 `Model with name X
// does not exist.`. Errors have KServe's body, {"error": "..."} (OpenAI
// routes use OpenAI's {"error": {"message", "type", ...}}). Bodies are
// parsed as JSON whatever their Content-Type, as KServe does (so
// "application/json; charset=utf-8", or none, is fine); bad JSON, unknown
// fields or parameters, and "instances" that is not a list are 400;
// bodies over the limit are 413. A full queue is 503 with Retry-After; a
// generation over the request timeout is 504. An empty question is 400 on
// every route that fills the QA prompt (V1, V2, chat, where message
// content may not be null either). A connection is closed when reading a
// request (headers and body) takes longer than Options.ReadTimeout (30 s)
// or when it has been idle for Options.IdleTimeout (2 min); an answer
// streams for as long as the request timeout allows.
//
// # V1 predict
//
//	POST /v1/models/NAME:predict
//	{"instances": [{"context": "...", "question": "..."}, ...],
//	 "parameters": {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9,
//	                "top_k": 50, "repetition_penalty": 1.1, "seed": 1,
//	                "stop": ["\n"], "do_sample": true}}
//	-> {"predictions": ["answer", ...], "run_ids": ["<uuid>", ...]}
//
// An instance may also be a bare string (the question, with no context).
// Every parameter is optional; max_new_tokens is capped by the server and
// by the model's context length. "run_ids" (an extra top-level field, which
// V1 clients ignore) holds each instance's LangSmith trace id, in order;
// a single-instance request also gets it in the X-Run-Id header. The UI
// sends it back with feedback. V2 returns the ids in the response's
// "parameters": {"run_ids": [...]}; OpenAI routes in each choice's "run_id"
// and in X-Run-Id.
//
// # Streaming V1
//
// A predict request with one instance and the header
// `Accept: text/event-stream` streams Server-Sent Events:
//
//	data: {"token": "..."}                  (one per piece of text, in order)
//	data: {"done": true, "prediction": "...", "run_id": "...", "tokens_in": N,
//	       "tokens_out": M, "latency_ms": X, "finish_reason": "stop"|"length"}
//
// "prediction" is the parsed answer (the string parser trims the spaces the
// raw tokens carry). An error before the first event is an ordinary JSON
// error response; after it, a last event `data: {"error": "..."}`.
// The X-Run-Id header is set on the stream too.
//
// # OpenAI routes
//
// /openai/v1/completions sends "prompt" to the model as it is (an identity
// prompt template keeps the trace shape) and answers the continuation
// verbatim, its leading space included (" Paris" after "The capital of
// France is"), as transformers' text-generation pipeline, llama.cpp and vLLM
// do; clean_up_tokenization_spaces is not applied (as in llama.cpp, vLLM
// and TGI). /openai/v1/chat/completions maps
// the conversation onto the QA prompt: the last message (which must be the
// user's) is the question; system messages and earlier turns, as
// "role: text" lines, are the context. Streams end with `data: [DONE]`;
// "stream_options": {"include_usage": true} adds a usage chunk before it.
//
// # Feedback
//
//	POST /v1/feedback {"run_id": "<uuid>", "score": 0|1, "comment": "..."}
//	-> 202 {"ok": true}
//
// queues LangSmith feedback (key "user_score", or "key" if given) for the
// run; 400 for a bad id or score, 503 when tracing is off or the queue is
// full.
//
// # Traces
//
// Each instance is one LangSmith trace shaped like LangChain's
// `prompt | llm | parser`: a "RunnableSequence" chain run with
// "PromptTemplate" (prompt), the model (llm) and "StrOutputParser" (parser)
// children; the llm run carries token usage, latency, tokens/s, model id
// and revision in its metadata. Traces leave through langsmith.Tracer's
// bounded background queue and never hold up a response.
package server
