package records

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Task says what a Records artifact holds.
type Task string

// Tasks.
const (
	// TaskQA records are {"context", "question", "answer"}.
	TaskQA Task = "qa"
	// TaskLM records are {"text"}.
	TaskLM Task = "lm"
)

// ParseTask reads "qa" or "lm" (empty means qa).
func ParseTask(s string) (Task, error) {
	switch Task(s) {
	case "", TaskQA:
		return TaskQA, nil
	case TaskLM:
		return TaskLM, nil
	}
	return "", fmt.Errorf("unknown task %q (want qa or lm)", s)
}

// Fields returns the record fields of the task, in output order.
func (t Task) Fields() []string {
	if t == TaskLM {
		return []string{"text"}
	}
	return []string{"context", "question", "answer"}
}

// Record is one line of data.jsonl. Only the task's fields are written.
type Record struct {
	Context, Question, Answer string // task qa
	Text                      string // task lm
}

type qaLine struct {
	Context  string `json:"context"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

type lmLine struct {
	Text string `json:"text"`
}

func (r Record) line(t Task) any {
	if t == TaskLM {
		return lmLine{r.Text}
	}
	return qaLine{r.Context, r.Question, r.Answer}
}

func (r Record) get(field string) string {
	switch field {
	case "context":
		return r.Context
	case "question":
		return r.Question
	case "answer":
		return r.Answer
	case "text":
		return r.Text
	}
	return ""
}

// Set sets the record field named field ("context", "question", "answer"
// or "text"); other names are ignored.
func (r *Record) Set(field, v string) {
	switch field {
	case "context":
		r.Context = v
	case "question":
		r.Question = v
	case "answer":
		r.Answer = v
	case "text":
		r.Text = v
	}
}

// DefaultFields lists, per record field, the paths tried in order when no
// mapping is given; the first that a row has is used. They cover:
//
//   - SQuAD and its Hub copies (rajpurkar/squad: context, question,
//     answers.text[0]); a SQuAD v2 row with no answer is skipped;
//   - flat QA files (context, question, answer; or passage/query);
//   - answers as a list of objects (answers[0].text) or of strings (answers[0]);
//   - instruction data: Dolly (context, instruction, response) and Alpaca
//     (input, instruction, output), with the instruction as the question;
//   - for task lm: text, content or document.
func DefaultFields(t Task) map[string][]string {
	if t == TaskLM {
		return map[string][]string{"text": {"text", "content", "document"}}
	}
	return map[string][]string{
		"context":  {"context", "passage", "paragraph", "input"},
		"question": {"question", "query", "instruction"},
		"answer":   {"answers.text[0]", "answers[0].text", "answers[0]", "answer.text[0]", "answer.text", "answer", "response", "output"},
	}
}

// Mapping turns source rows into records.
type Mapping struct {
	task   Task
	fields []string
	paths  map[string][]Path
	// optional fields may be missing or empty (the context of instruction
	// data without input); required ones skip the row.
	optional map[string]bool
}

// NewMapping builds the mapping for task: for each field the path given in
// overrides (e.g. "answer": "answers.text[0]"), else DefaultFields.
func NewMapping(task Task, overrides map[string]string) (*Mapping, error) {
	m := &Mapping{task: task, fields: task.Fields(), paths: map[string][]Path{}, optional: map[string]bool{}}
	defaults := DefaultFields(task)
	for field := range overrides {
		if _, ok := defaults[field]; !ok && overrides[field] != "" {
			return nil, fmt.Errorf("field %q is not a field of task %s (want %s)", field, task, strings.Join(task.Fields(), ", "))
		}
	}
	for _, field := range m.fields {
		srcs := defaults[field]
		if o := overrides[field]; o != "" {
			srcs = []string{o}
		}
		for _, s := range srcs {
			p, err := ParsePath(s)
			if err != nil {
				return nil, fmt.Errorf("%s field: %w", field, err)
			}
			m.paths[field] = append(m.paths[field], p)
		}
	}
	// With the default mapping a row may carry no context at all (Alpaca's
	// empty input); an explicit --context-field makes it required.
	if task == TaskQA && overrides["context"] == "" {
		m.optional["context"] = true
	}
	return m, nil
}

// Describe returns the paths used per field, for metadata.json.
func (m *Mapping) Describe() map[string]string {
	out := map[string]string{}
	for f, ps := range m.paths {
		var s []string
		for _, p := range ps {
			s = append(s, p.String())
		}
		out[f] = strings.Join(s, " | ")
	}
	return out
}

// Skip reasons, the keys of Metadata.SkippedByReason. Reasons about a field
// carry its name after a colon, e.g. "missing:answer".
const (
	SkipMalformed = "malformed row" // a line or record that does not decode
	SkipNotObject = "not an object" // a row that is not a JSON object
	SkipMissing   = "missing"       // no mapped path exists in the row
	SkipEmpty     = "empty"         // the value is empty or only white space
	SkipNotText   = "not text"      // the value is an object or a list
	// SkipInvalidUTF8: the row's bytes are not valid UTF-8. Decoding would
	// replace them with U+FFFD and pass the damage on as text.
	SkipInvalidUTF8 = "invalid UTF-8"
)

// Extract maps one row to a record, or returns why it is skipped.
func (m *Mapping) Extract(row any) (Record, string) {
	if _, ok := row.(map[string]any); !ok {
		return Record{}, SkipNotObject
	}
	var rec Record
	for _, field := range m.fields {
		var v any
		found := false
		for _, p := range m.paths[field] {
			if v, found = p.Lookup(row); found {
				break
			}
		}
		if !found || v == nil {
			if m.optional[field] {
				continue
			}
			return Record{}, SkipMissing + ":" + field
		}
		s, ok := scalarText(v)
		if !ok {
			return Record{}, SkipNotText + ":" + field
		}
		if !utf8.ValidString(s) { // Parquet byte arrays, which no reader checked
			return Record{}, SkipInvalidUTF8 + ":" + field
		}
		if strings.TrimSpace(s) == "" && !m.optional[field] {
			return Record{}, SkipEmpty + ":" + field
		}
		rec.Set(field, s)
	}
	return rec, ""
}

// scalarText renders a string, number or boolean as text.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), true
	case []byte:
		return string(x), true
	}
	return "", false
}

// Path addresses a value inside a row: keys separated by dots, list
// indexes in brackets, as in "answers.text[0]" or "data[2].value".
type Path []step

type step struct {
	key   string
	index int
	isIdx bool
}

// ParsePath parses a dotted path with [N] indexes (negative N counts from
// the end). A key containing '.' or '[' is written in brackets and quotes:
// `meta["a.b"]`.
func ParsePath(s string) (Path, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty field path")
	}
	var p Path
	i := 0
	expectKey := true
	for i < len(s) {
		switch c := s[i]; {
		case c == '.':
			if expectKey || i+1 == len(s) {
				return nil, fmt.Errorf("field path %q: misplaced '.' at %d", s, i)
			}
			expectKey = true
			i++
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("field path %q: unclosed '['", s)
			}
			inner := s[i+1 : i+end]
			if q, err := strconv.Unquote(inner); err == nil && strings.HasPrefix(inner, `"`) {
				p = append(p, step{key: q})
			} else if n, err := strconv.Atoi(inner); err == nil {
				if len(p) == 0 && expectKey && i == 0 {
					return nil, fmt.Errorf("field path %q: starts with an index", s)
				}
				p = append(p, step{index: n, isIdx: true})
			} else {
				return nil, fmt.Errorf("field path %q: %q is neither an index nor a quoted key", s, inner)
			}
			expectKey = false
			i += end + 1
		default:
			if !expectKey {
				return nil, fmt.Errorf("field path %q: expected '.' or '[' at %d", s, i)
			}
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			if strings.ContainsRune(s[i:j], ']') {
				return nil, fmt.Errorf("field path %q: stray ']'", s)
			}
			p = append(p, step{key: s[i:j]})
			expectKey = false
			i = j
		}
	}
	if expectKey {
		return nil, fmt.Errorf("field path %q: ends without a key", s)
	}
	return p, nil
}

// String renders the path as ParsePath reads it.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.isIdx:
			fmt.Fprintf(&b, "[%d]", s.index)
		case strings.ContainsAny(s.key, ".[]\""):
			fmt.Fprintf(&b, "[%q]", s.key)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

// Lookup returns the value at p inside v.
func (p Path) Lookup(v any) (any, bool) {
	for _, s := range p {
		if s.isIdx {
			list, ok := v.([]any)
			if !ok {
				return nil, false
			}
			i := s.index
			if i < 0 {
				i += len(list)
			}
			if i < 0 || i >= len(list) {
				return nil, false
			}
			v = list[i]
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[s.key]; !ok {
			return nil, false
		}
	}
	return v, true
}
