// Package langsmithtest is a local stand-in for LangSmith's ingestion and
// feedback API, for tests: it accepts POST /runs/multipart, /runs/batch and
// /feedback as LangSmith documents them, checks each payload, and records
// what it received. LangSmith itself is not reachable from the test machines.
package langsmithtest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
)

// Run is a run as the server received it.
type Run struct {
	ID          string         `json:"id"`
	TraceID     string         `json:"trace_id"`
	ParentRunID string         `json:"parent_run_id"`
	DottedOrder string         `json:"dotted_order"`
	Name        string         `json:"name"`
	RunType     string         `json:"run_type"`
	StartTime   string         `json:"start_time"`
	EndTime     string         `json:"end_time"`
	Inputs      map[string]any `json:"inputs"`
	Outputs     map[string]any `json:"outputs"`
	Error       string         `json:"error"`
	Extra       map[string]any `json:"extra"`
	SessionName string         `json:"session_name"`
}

// Metadata returns extra.metadata.
func (r Run) Metadata() map[string]any {
	md, _ := r.Extra["metadata"].(map[string]any)
	return md
}

// Feedback is a feedback item as received.
type Feedback struct {
	ID      string   `json:"id"`
	RunID   string   `json:"run_id"`
	Key     string   `json:"key"`
	Score   *float64 `json:"score"`
	Comment string   `json:"comment"`
	Source  struct {
		Type string `json:"type"`
	} `json:"feedback_source"`
}

// Server records runs and feedback. Handler overrides let a test inject
// failures (Fail) or disable an endpoint (NoMultipart).
type Server struct {
	*httptest.Server
	// APIKey, when set, is required in x-api-key.
	APIKey string

	mu        sync.Mutex
	runs      []Run
	feedback  []Feedback
	problems  []string
	requests  map[string]int
	fail      func(path string, n int) int // status to answer instead, or 0
	multipart bool
	gate      chan struct{}
	gated     map[string]bool // paths Block holds; empty: all
}

// New starts a server. Close it when done.
func New() *Server {
	s := &Server{requests: map[string]int{}, multipart: true}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// NoMultipart makes /runs/multipart answer 404, as older servers do.
func (s *Server) NoMultipart() { s.mu.Lock(); s.multipart = false; s.mu.Unlock() }

// Fail sets a function that picks a status for the n-th (from 1) request to
// path; 0 lets the request through.
func (s *Server) Fail(f func(path string, n int) int) { s.mu.Lock(); s.fail = f; s.mu.Unlock() }

// Block holds every request to paths (all paths if none) until Unblock, to
// simulate a hung LangSmith, or a hung endpoint of it.
func (s *Server) Block(paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
	s.gated = map[string]bool{}
	for _, p := range paths {
		s.gated[p] = true
	}
}

// Unblock releases held requests.
func (s *Server) Unblock() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

// Runs returns the runs received so far.
func (s *Server) Runs() []Run { s.mu.Lock(); defer s.mu.Unlock(); return append([]Run(nil), s.runs...) }

// FeedbackItems returns the feedback received so far.
func (s *Server) FeedbackItems() []Feedback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Feedback(nil), s.feedback...)
}

// Requests returns how many requests reached path.
func (s *Server) Requests(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.requests[path] }

// Problems lists every payload defect seen (bad JSON, missing fields,
// inconsistent ids). A passing test expects none.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

func (s *Server) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	n := s.requests[r.URL.Path]
	gate, fail, mp := s.gate, s.fail, s.multipart
	if len(s.gated) > 0 && !s.gated[r.URL.Path] {
		gate = nil
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, `{"detail":"method not allowed"}`, http.StatusMethodNotAllowed)
		return
	}
	if s.APIKey != "" && r.Header.Get("x-api-key") != s.APIKey {
		http.Error(w, `{"detail":"Invalid token"}`, http.StatusUnauthorized)
		return
	}
	if fail != nil {
		if code := fail(r.URL.Path, n); code != 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"detail":"injected"}`, code)
			return
		}
	}
	var err error
	switch r.URL.Path {
	case "/runs/multipart":
		if !mp {
			http.Error(w, `{"detail":"Not Found"}`, http.StatusNotFound)
			return
		}
		err = s.multipartRuns(r)
	case "/runs/batch":
		err = s.batchRuns(r)
	case "/feedback":
		err = s.feedbackItem(r)
	default:
		http.Error(w, `{"detail":"Not Found"}`, http.StatusNotFound)
		return
	}
	if err != nil {
		s.mu.Lock()
		s.problem("%s: %v", r.URL.Path, err)
		s.mu.Unlock()
		http.Error(w, fmt.Sprintf(`{"detail":%q}`, err.Error()), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{}`)
}

var partName = regexp.MustCompile(`^(post|patch)\.([0-9a-f-]{36})(\.(inputs|outputs|events|extra|error|serialized))?$`)

func (s *Server) multipartRuns(r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return fmt.Errorf("content type %q is not multipart/form-data", r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	byID := map[string]*Run{}
	var order []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read part: %w", err)
		}
		m := partName.FindStringSubmatch(p.FormName())
		if m == nil {
			return fmt.Errorf("bad part name %q", p.FormName())
		}
		if m[1] != "post" {
			return fmt.Errorf("part %q: only post operations expected", p.FormName())
		}
		if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return fmt.Errorf("part %q: content type %q", p.FormName(), ct)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return err
		}
		id := m[2]
		run := byID[id]
		switch m[4] {
		case "":
			if run != nil {
				return fmt.Errorf("part %q twice", p.FormName())
			}
			run = &Run{}
			if err := json.Unmarshal(data, run); err != nil {
				return fmt.Errorf("part %q: %w", p.FormName(), err)
			}
			if run.Inputs != nil || run.Outputs != nil {
				return fmt.Errorf("part %q carries inputs/outputs, which go in their own parts", p.FormName())
			}
			if run.ID != id {
				return fmt.Errorf("part %q holds run %q", p.FormName(), run.ID)
			}
			byID[id] = run
			order = append(order, id)
		case "inputs", "outputs":
			if run == nil {
				return fmt.Errorf("part %q before post.%s", p.FormName(), id)
			}
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				return fmt.Errorf("part %q: %w", p.FormName(), err)
			}
			if m[4] == "inputs" {
				run.Inputs = v
			} else {
				run.Outputs = v
			}
		}
	}
	runs := make([]Run, 0, len(order))
	for _, id := range order {
		runs = append(runs, *byID[id])
	}
	return s.record(runs)
}

func (s *Server) batchRuns(r *http.Request) error {
	var body struct {
		Post  []Run `json:"post"`
		Patch []Run `json:"patch"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		return fmt.Errorf("decode batch: %w", err)
	}
	if len(body.Patch) > 0 {
		return fmt.Errorf("patch operations not expected for finished runs")
	}
	return s.record(body.Post)
}

var dottedPart = regexp.MustCompile(`^\d{8}T\d{6}\d{6}Z[0-9a-f-]{36}$`)

// record checks runs as LangSmith would and stores them.
func (s *Server) record(runs []Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, run := range runs {
		if run.ID == "" || run.TraceID == "" || run.Name == "" || run.RunType == "" || run.StartTime == "" || run.DottedOrder == "" {
			return fmt.Errorf("run %q lacks a required field", run.ID)
		}
		if run.EndTime == "" {
			s.problem("run %s (%s) has no end_time", run.ID, run.Name)
		}
		if run.SessionName == "" {
			s.problem("run %s has no session_name", run.ID)
		}
		parts := strings.Split(run.DottedOrder, ".")
		for _, p := range parts {
			if !dottedPart.MatchString(p) {
				s.problem("run %s: dotted_order segment %q is malformed", run.ID, p)
			}
		}
		if !strings.HasSuffix(parts[len(parts)-1], run.ID) {
			s.problem("run %s: dotted_order does not end with its id", run.ID)
		}
		if !strings.HasSuffix(parts[0], run.TraceID) {
			s.problem("run %s: dotted_order does not start with trace %s", run.ID, run.TraceID)
		}
		if run.ParentRunID == "" {
			if run.TraceID != run.ID || len(parts) != 1 {
				s.problem("root run %s: trace_id %s / depth %d", run.ID, run.TraceID, len(parts))
			}
		} else if len(parts) < 2 || !strings.HasSuffix(parts[len(parts)-2], run.ParentRunID) {
			s.problem("run %s: dotted_order does not name parent %s", run.ID, run.ParentRunID)
		}
		s.runs = append(s.runs, run)
	}
	return nil
}

func (s *Server) feedbackItem(r *http.Request) error {
	var fb Feedback
	if err := json.NewDecoder(r.Body).Decode(&fb); err != nil {
		return fmt.Errorf("decode feedback: %w", err)
	}
	if fb.RunID == "" || fb.Key == "" {
		return fmt.Errorf("feedback needs run_id and key")
	}
	s.mu.Lock()
	s.feedback = append(s.feedback, fb)
	s.mu.Unlock()
	return nil
}
