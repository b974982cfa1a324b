package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/kfllm/kfllm/internal/kserve"
)

// sseWriter writes server-sent events to the browser. The response starts
// (status 200, event-stream headers) on the first write.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (s *sseWriter) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // ask proxies (nginx) not to buffer the stream
	s.w.WriteHeader(http.StatusOK)
}

// event writes one data event holding ev as JSON (one line: encoding/json
// escapes newlines inside strings) and flushes it.
func (s *sseWriter) event(ev kserve.StreamEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	s.start()
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return s.flush()
}

// comment writes an SSE comment, which clients ignore; it keeps proxies from
// closing a quiet stream.
func (s *sseWriter) comment(text string) error {
	s.start()
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return fmt.Errorf("write comment: %w", err)
	}
	return s.flush()
}

func (s *sseWriter) flush() error {
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}
