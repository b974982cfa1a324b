package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/langsmith"

	"github.com/gorilla/mux"

	"github.com/kfllm/kfllm/internal/scheduler"
)

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes KServe's error body, {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, kserve.Error{Error: msg})
}

// badRequest is an error the client made; its text is shown to the client.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{fmt.Sprintf(format, args...)}
}

// errBusy marks work refused for lack of room (503 with Retry-After).
var errBusy = errors.New("server busy")

// errClientGone marks a client that went away before the answer.
var errClientGone = errors.New("client closed the request")

// statusOf maps an error from the chain or the request to an HTTP status
// and the message the client sees. This is the one place that does so.
func (s *Server) statusOf(err error) (int, string) {
	var br *badRequest
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &br):
		return http.StatusBadRequest, br.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, errInvalidParam), errors.Is(err, scheduler.ErrPromptTooLong):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, scheduler.ErrQueueFull), errors.Is(err, scheduler.ErrClosed), errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, fmt.Sprintf("generation did not finish within %s", s.opts.RequestTimeout)
	case errors.Is(err, context.Canceled), errors.Is(err, errClientGone):
		return 499, "client closed request" // nginx's code; nobody reads it
	}
	if errors.Is(err, errPanic) {
		return http.StatusInternalServerError, "internal server error"
	}
	if st, msg, ok := upstreamStatus(err); ok {
		return st, msg
	}
	return http.StatusInternalServerError, "internal error: " + err.Error()
}

// fail writes err as an error response (with Retry-After where retrying helps)
// and logs server-side failures once.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.statusOf(err)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, s.opts.RetryAfter.Seconds()))))
	}
	s.logFailure(r, status, err)
	if status == 499 {
		w.WriteHeader(status)
		return
	}
	writeError(w, status, msg)
}

// logFailure logs a server-side failure once, with the stack of a
// recovered panic.
func (s *Server) logFailure(r *http.Request, status int, err error) {
	if status < 500 || status == http.StatusServiceUnavailable {
		return
	}
	var pe *panicError
	if errors.As(err, &pe) {
		s.metrics.panics.Inc()
		s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
		return
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
}

// readBody reads the request body under the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequestf("read body: %v", err)
	}
	return body, nil
}

// readJSON reads the request body under the size limit and decodes it
// strictly into v (see readBody and decodeStrict).
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes JSON into v, refusing unknown fields and trailing data.
// KServe parses the body as JSON whatever its Content-Type says, and so do we.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequestf("Unrecognized request format: %v", err)
	}
	if dec.More() {
		return badRequestf("Unrecognized request format: trailing data after the JSON value")
	}
	return nil
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets SSE handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverer turns a panic in a handler into a 500 (if nothing was written
// yet) and one log line with the stack, so that a panic never reaches the
// client as a dropped connection. instrument does the same for matched
// routes (so that the 500 is also counted); this covers the rest.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.recovered(sw, r, p)
			}
		}()
		// LangSmith's distributed-tracing baggage (the UI's user id) goes
		// into the request's trace as metadata. Only the UI's identity
		// reaches this server in the cluster (llm-api-deny-others).
		next.ServeHTTP(sw, r.WithContext(langsmith.ContextWithBaggage(r.Context(), r.Header)))
	})
}

func (s *Server) recovered(sw *statusWriter, r *http.Request, p any) {
	if p == http.ErrAbortHandler {
		panic(p)
	}
	s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	s.metrics.panics.Inc()
	if sw.status == 0 {
		writeError(sw, http.StatusInternalServerError, "internal server error")
	}
}

// instrument counts and times requests by route template and status, and
// logs one line per request.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		defer func() {
			if p := recover(); p != nil {
				s.recovered(sw, r, p)
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			code := strconv.Itoa(status)
			s.metrics.requests.WithLabelValues(route, r.Method, code).Inc()
			s.metrics.latency.WithLabelValues(route, r.Method, code).Observe(d.Seconds())
			if route != "/metrics" {
				s.log.Info("request", "method", r.Method, "route", route, "path", r.URL.Path,
					"status", status, "bytes", sw.bytes, "duration_ms", d.Milliseconds(), "remote", r.RemoteAddr)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
