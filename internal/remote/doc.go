// Package remote backs the model server with a hosted model instead of our
// own (serving --backend huggingface|openai), through langchaingo's
// clients, so that the routes, the prompt and the trace shape stay those of
// the local engine:
//
//   - huggingface: langchaingo's llms/huggingface against the Hugging Face
//     text-generation API: the serverless Inference API
//     (POST {base}/models/MODEL_ID) or, with a URL, a TGI server or an
//     Inference Endpoint (POST to the URL itself).
//   - openai: langchaingo's llms/openai against any OpenAI-compatible /v1
//     endpoint (vLLM, KServe's huggingfaceserver, TGI's Messages API), chat
//     completions, streaming.
//
// Both clients go through an http.RoundTripper of ours that records the
// upstream's failures (status and message, timeouts) so that the server can
// answer 502 or 504 with them (langchaingo's OpenAI client flattens its
// errors into strings); for huggingface it also completes the request as the
// text-generation API expects it (max_new_tokens, return_full_text=false,
// greedy as do_sample=false), which langchaingo's client does not.
// Generation requests are never retried (they are not idempotent); the
// readiness probe (GET) runs at start and then periodically, and the
// server's readiness routes follow it.
//
// Parameters a backend cannot honour through its client are refused with
// server.ErrInvalidParam (a 400 naming them), never dropped silently:
// huggingface has no stop strings; openai (through langchaingo) no top_p,
// top_k or repetition_penalty.
package remote
