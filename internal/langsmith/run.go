package langsmith

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Run types LangSmith knows. A LangChain `prompt | llm | parser` sequence is
// a chain run with a prompt, an llm and a parser child.
const (
	RunTypeChain  = "chain"
	RunTypePrompt = "prompt"
	RunTypeLLM    = "llm"
	RunTypeParser = "parser"
)

// Run is one node of a trace, in LangSmith's run schema. Build a trace with
// [NewTrace] and [Run.Child], finish each node with [Run.End], and hand the
// root to [Tracer.Submit].
type Run struct {
	ID          string         `json:"id"`
	TraceID     string         `json:"trace_id"`
	ParentRunID string         `json:"parent_run_id,omitempty"`
	DottedOrder string         `json:"dotted_order"`
	Name        string         `json:"name"`
	RunType     string         `json:"run_type"`
	StartTime   time.Time      `json:"start_time"`
	EndTime     *time.Time     `json:"end_time,omitempty"`
	Inputs      map[string]any `json:"inputs"`
	Outputs     map[string]any `json:"outputs,omitempty"`
	Error       string         `json:"error,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	SessionName string         `json:"session_name,omitempty"`

	mu       sync.Mutex
	children []*Run
}

// dottedTime is the SDK's %Y%m%dT%H%M%S%fZ (microseconds, UTC).
const dottedTime = "20060102T150405.000000Z"

func dottedStamp(t time.Time) string {
	s := t.UTC().Format(dottedTime)
	return s[:15] + s[16:] // drop the "." that Go's layout needs
}

func newRunID() string {
	id, err := uuid.NewV7()
	if err != nil { // only if crypto/rand fails
		return uuid.NewString()
	}
	return id.String()
}

// NewTrace starts the root run of a new trace at time start.
func NewTrace(name, runType string, inputs map[string]any, start time.Time) *Run {
	id := newRunID()
	start = start.UTC()
	return &Run{
		ID: id, TraceID: id, Name: name, RunType: runType,
		StartTime: start, Inputs: inputs,
		DottedOrder: dottedStamp(start) + id,
	}
}

// Child starts a run under r. Children's start times are kept strictly after
// their parent's and previous sibling's, so that dotted_order sorts in
// execution order as LangSmith expects.
func (r *Run) Child(name, runType string, inputs map[string]any, start time.Time) *Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	start = start.UTC().Truncate(time.Microsecond)
	floor := r.StartTime.Truncate(time.Microsecond)
	if n := len(r.children); n > 0 {
		floor = r.children[n-1].StartTime
	}
	if !start.After(floor) {
		start = floor.Add(time.Microsecond)
	}
	id := newRunID()
	c := &Run{
		ID: id, TraceID: r.TraceID, ParentRunID: r.ID, Name: name, RunType: runType,
		StartTime: start, Inputs: inputs,
		DottedOrder: r.DottedOrder + "." + dottedStamp(start) + id,
	}
	r.children = append(r.children, c)
	return c
}

// End records the outputs or the error of r at time end.
func (r *Run) End(outputs map[string]any, err error, end time.Time) {
	end = end.UTC()
	if end.Before(r.StartTime) {
		end = r.StartTime
	}
	r.EndTime = &end
	r.Outputs = outputs
	if err != nil {
		r.Error = err.Error()
	}
}

// SetMetadata sets extra.metadata[key] = value, where LangSmith shows it.
func (r *Run) SetMetadata(key string, value any) {
	if r.Extra == nil {
		r.Extra = map[string]any{}
	}
	md, _ := r.Extra["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		r.Extra["metadata"] = md
	}
	md[key] = value
}

// Flatten lists r and its descendants, parents before children.
func (r *Run) Flatten() []*Run {
	out := []*Run{r}
	r.mu.Lock()
	kids := append([]*Run(nil), r.children...)
	r.mu.Unlock()
	for _, c := range kids {
		out = append(out, c.Flatten()...)
	}
	return out
}

// validate reports a run that LangSmith would reject.
func (r *Run) validate() error {
	if r.ID == "" || r.TraceID == "" || r.DottedOrder == "" || r.Name == "" || r.RunType == "" {
		return fmt.Errorf("run %q: id, trace_id, dotted_order, name and run_type are required", r.ID)
	}
	return nil
}
