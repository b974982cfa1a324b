package records

import (
	"encoding/json"
	"strings"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	v, err := decodeValue([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParsePathLookup(t *testing.T) {
	row := decode(t, `{"answers":{"text":["first","second"]},"a.b":{"c":[[1,2],[3]]},"list":[{"x":"y"}]}`)
	for path, want := range map[string]string{
		"answers.text[0]":  "first",
		"answers.text[-1]": "second",
		`["a.b"].c[1][0]`:  "3",
		"list[0].x":        "y",
	} {
		p, err := ParsePath(path)
		if err != nil {
			t.Fatalf("ParsePath(%q): %v", path, err)
		}
		v, ok := p.Lookup(row)
		s, _ := scalarText(v)
		if !ok || s != want {
			t.Errorf("%s -> %v, %v; want %q", path, v, ok, want)
		}
		if p2, _ := ParsePath(p.String()); p2.String() != p.String() {
			t.Errorf("String() of %q does not round-trip: %q", path, p.String())
		}
	}
	for _, path := range []string{"answers.text[5]", "answers.nope", "answers[0]", "list.x"} {
		p, _ := ParsePath(path)
		if _, ok := p.Lookup(row); ok {
			t.Errorf("%s found a value", path)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a[x]", "a[0", "[0]", "a]b"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) accepted", bad)
		}
	}
}

func TestDefaultMappingLayouts(t *testing.T) {
	m, err := NewMapping(TaskQA, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, row string
		want      Record
		skip      string
	}{
		{"squad", `{"context":"C","question":"Q","answers":{"text":["A","B"],"answer_start":[0,1]}}`, Record{Context: "C", Question: "Q", Answer: "A"}, ""},
		{"squad v2 unanswerable", `{"context":"C","question":"Q","answers":{"text":[],"answer_start":[]}}`, Record{}, "missing:answer"},
		{"flat", `{"context":"C","question":"Q","answer":"A"}`, Record{Context: "C", Question: "Q", Answer: "A"}, ""},
		{"answer objects", `{"passage":"C","query":"Q","answers":[{"text":"A"}]}`, Record{Context: "C", Question: "Q", Answer: "A"}, ""},
		{"answer strings", `{"context":"C","question":"Q","answers":["A"]}`, Record{Context: "C", Question: "Q", Answer: "A"}, ""},
		{"dolly", `{"instruction":"Q","context":"C","response":"A"}`, Record{Context: "C", Question: "Q", Answer: "A"}, ""},
		{"alpaca no input", `{"instruction":"Q","input":"","output":"A"}`, Record{Question: "Q", Answer: "A"}, ""},
		{"numeric answer", `{"context":"C","question":"Q","answer":100}`, Record{Context: "C", Question: "Q", Answer: "100"}, ""},
		{"empty question", `{"context":"C","question":"  ","answer":"A"}`, Record{}, "empty:question"},
		{"object answer", `{"context":"C","question":"Q","answer":{"x":1}}`, Record{}, "not text:answer"},
		{"list row", `["C","Q","A"]`, Record{}, SkipNotObject},
	}
	for _, tc := range cases {
		got, skip := m.Extract(decode(t, tc.row))
		if skip != tc.skip || got != tc.want {
			t.Errorf("%s: got %+v skip %q; want %+v skip %q", tc.name, got, skip, tc.want, tc.skip)
		}
	}
}

func TestMappingOverrides(t *testing.T) {
	m, err := NewMapping(TaskQA, map[string]string{"context": "doc.body", "answer": "labels[1]"})
	if err != nil {
		t.Fatal(err)
	}
	got, skip := m.Extract(decode(t, `{"doc":{"body":"C"},"question":"Q","labels":["x","A"]}`))
	if skip != "" || got != (Record{Context: "C", Question: "Q", Answer: "A"}) {
		t.Errorf("got %+v %q", got, skip)
	}
	// An explicit context field is required.
	if _, skip := m.Extract(decode(t, `{"question":"Q","labels":["x","A"]}`)); skip != "missing:context" {
		t.Errorf("skip = %q", skip)
	}
	if _, err := NewMapping(TaskLM, map[string]string{"answer": "x"}); err == nil || !strings.Contains(err.Error(), "not a field of task lm") {
		t.Errorf("err = %v", err)
	}
	lm, _ := NewMapping(TaskLM, nil)
	if got, skip := lm.Extract(decode(t, `{"content":"hello"}`)); skip != "" || got.Text != "hello" {
		t.Errorf("lm got %+v %q", got, skip)
	}
}

func TestRecordLineShape(t *testing.T) {
	b, _ := json.Marshal(Record{Context: "c", Question: "q", Answer: "a", Text: "t"}.line(TaskQA))
	if string(b) != `{"context":"c","question":"q","answer":"a"}` {
		t.Errorf("qa line = %s", b)
	}
	b, _ = json.Marshal(Record{Text: "t"}.line(TaskLM))
	if string(b) != `{"text":"t"}` {
		t.Errorf("lm line = %s", b)
	}
}

func TestBadRowLimit(t *testing.T) {
	for _, tc := range []struct {
		in            string
		skipped, read int64
		exceeded      bool
	}{
		{"", 10, 100, false}, {"", 11, 100, true},
		{"0", 1, 100, true}, {"5", 5, 10, false},
		{"50%", 5, 10, false}, {"none", 99, 100, false},
	} {
		l, err := ParseBadRowLimit(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Exceeded(tc.skipped, tc.read); got != tc.exceeded {
			t.Errorf("%q: exceeded(%d, %d) = %v", tc.in, tc.skipped, tc.read, got)
		}
	}
	for _, bad := range []string{"-3", "x", "150%"} {
		if _, err := ParseBadRowLimit(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
