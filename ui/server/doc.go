// Package server is kfllm's web UI: an HTTP server that serves one embedded
// page (a context area, a question field, a Generate Response button, the
// streamed answer with its latency and token counts, and thumbs up/down for
// feedback) and proxies the page's requests to the serving API.
//
// The browser talks only to this server. The server calls the KServe V1 API
// of the InferenceService (Options.APIURL, Options.ModelName), so the Istio
// policy in front of the API admits exactly one identity: the UI's. Its own
// routes are:
//
//	GET  /               the page (HTML; scripts and styles under /static/)
//	GET  /static/...     embedded JavaScript, CSS and icon
//	POST /api/generate   JSON {"context","question","max_new_tokens","temperature"}
//	                     -> text/event-stream: {"token"} events, then {"done":true,...},
//	                        or {"error":"words a person understands"}
//	POST /api/feedback   JSON {"run_id","score":0|1,"comment"} -> {"ok":true}
//	GET  /healthz        liveness/readiness probe -> {"status":"ok"}
//	GET  /metrics        Prometheus: requests by route and status, refusals by
//	                     reason, generations in flight, clients tracked
//
// The page is public, so the API routes are limited per client address: a
// token bucket (golang.org/x/time/rate) and a cap on generations in flight,
// plus a cap for all clients; past them the answer is 429 with Retry-After.
// The client is its TCP peer unless the peer is a configured trusted proxy
// (the Istio sidecar) that carries the gateway's mTLS identity in
// X-Forwarded-Client-Cert; only then are X-Forwarded-For and the identity
// header (kubeflow-userid) believed. An optional setting requires that
// identity; the user id goes to the API as LangSmith baggage metadata.
//
// Everything the page loads is embedded (no CDN). Every response carries a
// Content-Security-Policy without inline scripts, and the page renders model
// output and error text as text (textContent), never as HTML. The server holds
// no secret, so none can reach the browser; the API address stays server-side.
//
// The handler code lives here, beside ui/main.go, rather than under
// internal/: go:embed only reaches files at or below the package directory,
// and docs/design.md §2 puts the UI's static assets in ui/, so the package that
// embeds them lives in ui/ too.
package server
