package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/kfp"
)

// fakeKFP follows the KFP v2beta1 REST routes that Submit uses, as the
// generated go_http_client and the KFP API server speak them (snake_case
// JSON, multipart "uploadfile", filters as JSON predicates). KFP itself
// cannot run here; this server checks what a client sends and keeps state.
type fakeKFP struct {
	t      *testing.T
	prefix string

	mu          sync.Mutex
	pipelines   map[string]string            // display name -> id
	versions    map[string]map[string]string // pipeline id -> version name -> id
	experiments map[string]string            // namespace/name -> id
	runs        map[string]map[string]any    // id -> created body
	states      []string                     // states GetRun returns in turn
	calls       []string
	uploads     [][]byte
	failStatus  int
	ids         int
}

func newFake(t *testing.T, prefix string) (*fakeKFP, *httptest.Server) {
	f := &fakeKFP{t: t, prefix: prefix, pipelines: map[string]string{}, versions: map[string]map[string]string{},
		experiments: map[string]string{}, runs: map[string]map[string]any{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeKFP) id(kind string) string { f.ids++; return fmt.Sprintf("%s-%d", kind, f.ids) }

// filterName reads the display_name EQUALS predicate of a v2beta1 filter.
func filterName(t *testing.T, r *http.Request) string {
	raw := r.URL.Query().Get("filter")
	if raw == "" {
		return ""
	}
	var fl struct {
		Predicates []struct {
			Operation   string `json:"operation"`
			Key         string `json:"key"`
			StringValue string `json:"stringValue"`
		} `json:"predicates"`
	}
	if err := json.Unmarshal([]byte(raw), &fl); err != nil || len(fl.Predicates) != 1 ||
		fl.Predicates[0].Key != "display_name" || fl.Predicates[0].Operation != "EQUALS" {
		t.Errorf("filter %q: want one display_name EQUALS predicate", raw)
		return ""
	}
	return fl.Predicates[0].StringValue
}

func (f *fakeKFP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, f.prefix)
	f.calls = append(f.calls, r.Method+" "+path)
	if got := r.Header.Get("Authorization"); got != "Bearer tok-123" {
		f.t.Errorf("%s %s: Authorization = %q", r.Method, path, got)
	}
	if c, err := r.Cookie("authservice_session"); err != nil || c.Value != "sess-456" {
		f.t.Errorf("%s %s: session cookie = %v, %v", r.Method, path, c, err)
	}
	if v := r.Header.Values("Kubeflow-Userid"); len(v) > 0 {
		f.t.Errorf("%s %s: kubeflow-userid sent: %v", r.Method, path, v)
	}
	if f.failStatus != 0 {
		if f.failStatus == http.StatusFound {
			http.Redirect(w, r, "/dex/auth?client_id=kubeflow", http.StatusFound)
			return
		}
		if f.failStatus == http.StatusForbidden { // an HTML page from a proxy
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(f.failStatus)
			io.WriteString(w, "<html>RBAC: access denied</html>")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.failStatus)
		io.WriteString(w, `{"error":"denied","code":16,"message":"denied"}`)
		return
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	upload := func() {
		file, _, err := r.FormFile("uploadfile")
		if err != nil {
			f.t.Errorf("upload without uploadfile: %v", err)
			return
		}
		b, _ := io.ReadAll(file)
		if _, err := kfp.Unmarshal(b); err != nil {
			f.t.Errorf("uploaded YAML does not parse: %v", err)
		}
		f.uploads = append(f.uploads, b)
	}
	q := r.URL.Query()
	switch {
	case r.Method == "GET" && path == "/apis/v2beta1/pipelines":
		var ps []map[string]any
		name := filterName(f.t, r)
		if id, ok := f.pipelines[name]; ok {
			ps = append(ps, map[string]any{"pipeline_id": id, "display_name": name})
		}
		reply(map[string]any{"pipelines": ps, "total_size": len(ps)})
	case r.Method == "POST" && path == "/apis/v2beta1/pipelines/upload":
		upload()
		name := q.Get("name")
		id := f.id("pipeline")
		f.pipelines[name] = id
		f.versions[id] = map[string]string{name: f.id("version")}
		reply(map[string]any{"pipeline_id": id, "display_name": name, "namespace": q.Get("namespace")})
	case r.Method == "POST" && path == "/apis/v2beta1/pipelines/upload_version":
		upload()
		pid, name := q.Get("pipelineid"), q.Get("name")
		if f.versions[pid] == nil {
			http.Error(w, `{"message":"no such pipeline"}`, http.StatusNotFound)
			return
		}
		id := f.id("version")
		f.versions[pid][name] = id
		reply(map[string]any{"pipeline_id": pid, "pipeline_version_id": id, "display_name": name})
	case r.Method == "GET" && strings.HasPrefix(path, "/apis/v2beta1/pipelines/") && strings.HasSuffix(path, "/versions"):
		pid := strings.TrimSuffix(strings.TrimPrefix(path, "/apis/v2beta1/pipelines/"), "/versions")
		name := filterName(f.t, r)
		var vs []map[string]any
		for n, id := range f.versions[pid] {
			if name == "" || n == name {
				vs = append(vs, map[string]any{"pipeline_version_id": id, "display_name": n, "pipeline_id": pid})
			}
		}
		reply(map[string]any{"pipeline_versions": vs, "total_size": len(vs)})
	case r.Method == "GET" && path == "/apis/v2beta1/experiments":
		var es []map[string]any
		if id, ok := f.experiments[q.Get("namespace")+"/"+filterName(f.t, r)]; ok {
			es = append(es, map[string]any{"experiment_id": id})
		}
		reply(map[string]any{"experiments": es})
	case r.Method == "POST" && path == "/apis/v2beta1/experiments":
		var e struct {
			DisplayName string `json:"display_name"`
			Namespace   string `json:"namespace"`
		}
		json.NewDecoder(r.Body).Decode(&e)
		id := f.id("experiment")
		f.experiments[e.Namespace+"/"+e.DisplayName] = id
		reply(map[string]any{"experiment_id": id, "display_name": e.DisplayName, "namespace": e.Namespace})
	case r.Method == "POST" && path == "/apis/v2beta1/runs":
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		id := f.id("run")
		f.runs[id] = body
		reply(map[string]any{"run_id": id, "display_name": body["display_name"], "state": "PENDING"})
	case r.Method == "GET" && strings.HasPrefix(path, "/apis/v2beta1/runs/"):
		id := strings.TrimPrefix(path, "/apis/v2beta1/runs/")
		state := "RUNNING"
		if len(f.states) > 0 {
			state, f.states = f.states[0], f.states[1:]
		}
		run := map[string]any{"run_id": id, "state": state}
		if state == "FAILED" {
			run["error"] = map[string]any{"code": 2, "message": "finetune: exit code 1"}
		}
		reply(run)
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

func compiledYAML(t *testing.T, tag string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/kfllm-finetune.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), ":dev", ":"+tag))
}

func opts(srv *httptest.Server, out io.Writer) Options {
	return Options{
		Host: srv.URL, Namespace: "kubeflow-user-example-com", Out: out, PollInterval: time.Millisecond,
		Auth: Auth{Token: "tok-123", Cookie: "sess-456"},
		Now:  func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
	}
}

func TestSubmitUploadsThenReuses(t *testing.T) {
	f, srv := newFake(t, "")
	var out strings.Builder
	o := opts(srv, &out)
	o.Params = map[string]string{"epochs": "3", "hf_repo": "me/model", "learning_rate": "0.0001"}
	res, err := Submit(context.Background(), compiledYAML(t, "v1"), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := "GET /apis/v2beta1/pipelines|POST /apis/v2beta1/pipelines/upload|GET /apis/v2beta1/pipelines/pipeline-1/versions|" +
		"GET /apis/v2beta1/experiments|POST /apis/v2beta1/experiments|POST /apis/v2beta1/runs"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
	run := f.runs[res.RunID]
	ref, _ := run["pipeline_version_reference"].(map[string]any)
	if ref["pipeline_id"] != "pipeline-1" || ref["pipeline_version_id"] != "version-2" || run["experiment_id"] != "experiment-3" {
		t.Errorf("run body = %v", run)
	}
	params := run["runtime_config"].(map[string]any)["parameters"].(map[string]any)
	if params["epochs"] != 3.0 || params["hf_repo"] != "me/model" || params["learning_rate"] != 0.0001 || len(params) != 3 {
		t.Errorf("run parameters = %#v (want typed values, only those given)", params)
	}
	if run["display_name"] != "kfllm-finetune 2026-11-27 12:00:00" {
		t.Errorf("run name = %v", run["display_name"])
	}
	if res.URL != srv.URL+"/#/runs/details/"+res.RunID || !strings.Contains(out.String(), res.URL) {
		t.Errorf("URL %q not printed:\n%s", res.URL, out.String())
	}

	// Same YAML again: the server named the first version after the
	// pipeline, so this uploads the version named after the YAML's hash once;
	// from then on that version is reused. The experiment is found.
	f.calls = nil
	if _, err := Submit(context.Background(), compiledYAML(t, "v1"), o); err != nil {
		t.Fatal(err)
	}
	want = "GET /apis/v2beta1/pipelines|GET /apis/v2beta1/pipelines/pipeline-1/versions|POST /apis/v2beta1/pipelines/upload_version|GET /apis/v2beta1/experiments|POST /apis/v2beta1/runs"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("second submit calls:\n%s\nwant:\n%s", got, want)
	}
	f.calls = nil
	if _, err := Submit(context.Background(), compiledYAML(t, "v1"), o); err != nil {
		t.Fatal(err)
	}
	want = "GET /apis/v2beta1/pipelines|GET /apis/v2beta1/pipelines/pipeline-1/versions|GET /apis/v2beta1/experiments|POST /apis/v2beta1/runs"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("third submit calls:\n%s\nwant:\n%s", got, want)
	}

	// A changed pipeline becomes a new version of the same pipeline.
	f.calls = nil
	res, err = Submit(context.Background(), compiledYAML(t, "v2"), o)
	if err != nil {
		t.Fatal(err)
	}
	want = "GET /apis/v2beta1/pipelines|GET /apis/v2beta1/pipelines/pipeline-1/versions|POST /apis/v2beta1/pipelines/upload_version|GET /apis/v2beta1/experiments|POST /apis/v2beta1/runs"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("fourth submit calls:\n%s\nwant:\n%s", got, want)
	}
	if len(f.versions["pipeline-1"]) != 3 || !strings.Contains(string(f.uploads[2]), "kfllm-finetune:v2") {
		t.Errorf("versions = %v", f.versions)
	}
	if ref := f.runs[res.RunID]["pipeline_version_reference"].(map[string]any); ref["pipeline_version_id"] == "version-2" {
		t.Errorf("new run uses the old version")
	}
}

// TestSubmitGPUPool: a run on a GPU pool (pipeline run --param
// node_selector=JSON --param tolerations=JSON) sends the scheduling
// parameters as JSON values in the run's runtime config.
func TestSubmitGPUPool(t *testing.T) {
	f, srv := newFake(t, "")
	o := opts(srv, io.Discard)
	o.Params = map[string]string{"hf_repo": "me/model", "accelerator": "nvidia.com/gpu",
		"node_selector": `{"cloud.google.com/gke-accelerator": "nvidia-l4"}`,
		"tolerations":   `[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`}
	res, err := Submit(context.Background(), compiledYAML(t, "v1"), o)
	if err != nil {
		t.Fatal(err)
	}
	params := f.runs[res.RunID]["runtime_config"].(map[string]any)["parameters"].(map[string]any)
	ns, _ := params["node_selector"].(map[string]any)
	tol, _ := params["tolerations"].([]any)
	if params["accelerator"] != "nvidia.com/gpu" || ns["cloud.google.com/gke-accelerator"] != "nvidia-l4" || len(tol) != 1 ||
		tol[0].(map[string]any)["effect"] != "NoSchedule" {
		t.Errorf("GPU run parameters = %#v", params)
	}
}

func TestSubmitWait(t *testing.T) {
	f, srv := newFake(t, "")
	var out strings.Builder
	o := opts(srv, &out)
	o.Wait = true
	f.states = []string{"PENDING", "RUNNING", "RUNNING", "SUCCEEDED"}
	res, err := Submit(context.Background(), compiledYAML(t, "v1"), o)
	if err != nil || res.State != "SUCCEEDED" {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if !strings.Contains(out.String(), "RUNNING\n") || strings.Count(out.String(), "RUNNING") != 1 {
		t.Errorf("state changes printed once each:\n%s", out.String())
	}

	f.states = []string{"RUNNING", "FAILED"}
	_, err = Submit(context.Background(), compiledYAML(t, "v1"), o)
	var rf *RunFailedError
	if !errors.As(err, &rf) || rf.State != "FAILED" || !strings.Contains(err.Error(), "finetune: exit code 1") {
		t.Fatalf("err = %v, want a RunFailedError with the server's message", err)
	}
}

func TestSubmitBehindGateway(t *testing.T) {
	_, srv := newFake(t, "/pipeline")
	var out strings.Builder
	o := opts(srv, &out)
	o.Host = srv.URL + "/pipeline"
	res, err := Submit(context.Background(), compiledYAML(t, "v1"), o)
	if err != nil {
		t.Fatal(err)
	}
	want := srv.URL + "/_/pipeline/?ns=kubeflow-user-example-com#/runs/details/" + res.RunID
	if res.URL != want {
		t.Errorf("URL = %s, want %s", res.URL, want)
	}
}

func TestSubmitAuthFailures(t *testing.T) {
	for status, hint := range map[int]string{
		http.StatusUnauthorized: "--token",
		http.StatusForbidden:    "namespace",
		http.StatusFound:        "login page",
	} {
		f, srv := newFake(t, "")
		f.failStatus = status
		_, err := Submit(context.Background(), compiledYAML(t, "v1"), opts(srv, io.Discard))
		if err == nil || !strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), "list pipelines") {
			t.Errorf("HTTP %d: err = %v, want the operation and a hint %q", status, err, hint)
		}
		t.Logf("HTTP %d: %v", status, err)
		if err != nil && strings.Contains(err.Error(), "tok-123") {
			t.Errorf("HTTP %d: the token is in the error", status)
		}
	}
}

func TestSubmitRejectsBeforeCalling(t *testing.T) {
	f, srv := newFake(t, "")
	for name, o := range map[string]Options{
		"unknown param": {Params: map[string]string{"epoch": "1"}},
		"bad float":     {Params: map[string]string{"learning_rate": "fast"}},
		"bad host":      {Host: "localhost:8888"},
		// node_selector is a STRUCT, tolerations a LIST (finetune's GPU pool).
		"node selector not an object": {Params: map[string]string{"node_selector": "cloud.google.com/gke-accelerator=nvidia-l4"}},
		"tolerations not an array":    {Params: map[string]string{"tolerations": `{"key": "nvidia.com/gpu"}`}},
	} {
		if o.Host == "" {
			o.Host = srv.URL
		}
		o.Out = io.Discard
		if _, err := Submit(context.Background(), compiledYAML(t, "v1"), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("calls made: %v", f.calls)
	}
}

func TestCookieForms(t *testing.T) {
	for in, want := range map[string]string{
		"sess-456":                      "authservice_session=sess-456",
		"oauth2_proxy_kubeflow=abc.def": "oauth2_proxy_kubeflow=abc.def",
	} {
		var got string
		tr := &transport{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r.Header.Get("Cookie")
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		}), auth: Auth{Cookie: in}}
		req, _ := http.NewRequest("GET", "http://x/", nil)
		req.Header.Set("kubeflow-userid", "someone@example.com")
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("cookie %q sent as %q, want %q", in, got, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNameFilterIsWhatTheServerParsed pins the filter to the one
// scripts/kfp_backend_check ran through the KFP API server's list-request
// parsing (recorded in internal/kfp/testdata/kfp_backend_check.json).
func TestNameFilterIsWhatTheServerParsed(t *testing.T) {
	const checked = `{"predicates":[{"key":"display_name","operation":"EQUALS","stringValue":"kfllm-finetune"}]}`
	if got := *nameFilter("kfllm-finetune"); got != checked {
		t.Errorf("nameFilter = %s, the backend check parsed %s", got, checked)
	}
}
