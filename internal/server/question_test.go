package server_test

import (
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
)

// TestEmptyQuestionRefusedOnEveryRoute: the question is required on every
// route that fills the QA prompt. V1 refused an empty one; V2 answered it,
// and OpenAI chat took null or missing content as an empty question.
func TestEmptyQuestionRefusedOnEveryRoute(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	v2 := func(data string) string {
		return `{"inputs":[{"name":"question","shape":[2],"datatype":"BYTES","data":` + data + `}]}`
	}
	for _, c := range []struct{ route, body, msg string }{
		{"/v1/models/llm:predict", `{"instances":[{"question":""}]}`, `"question" is empty`},
		{"/v2/models/llm/infer", v2(`["ok?", ""]`), `element 1 is empty`},
		{"/v2/models/llm/infer", v2(`[" \n", "ok?"]`), `element 0 is empty`},
	} {
		expectError(t, e.post(c.route, c.body), 400, c.msg)
	}
	for _, c := range []struct{ body, msg string }{
		{`{"model":"llm","messages":[{"role":"user","content":null}]}`, `"content" is required`},
		{`{"model":"llm","messages":[{"role":"user"}]}`, `"content" is required`},
		{`{"model":"llm","messages":[{"role":"system","content":null},{"role":"user","content":"q"}]}`, `"content" is required`},
		{`{"model":"llm","messages":[{"role":"user","content":"  "}]}`, "is empty"},
		{`{"model":"llm","messages":[{"role":"user","content":[]}]}`, "is empty"},
	} {
		r := e.post("/openai/v1/chat/completions", c.body)
		em, _ := r.json(t)["error"].(map[string]any)
		if got, _ := em["message"].(string); r.status != 400 || !strings.Contains(got, c.msg) {
			t.Errorf("%s: %d %s, want 400 with %q", c.body, r.status, r.body, c.msg)
		}
	}
	// A question that is there is still answered.
	if r := e.post("/v2/models/llm/infer", v2(`["a?", "b?"]`)); r.status != 200 {
		t.Errorf("V2 with two questions: %d %s", r.status, r.body)
	}
	if r := e.post("/openai/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"q"}]}`); r.status != 200 {
		t.Errorf("chat: %d %s", r.status, r.body)
	}
}
