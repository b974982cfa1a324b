package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
)

// KServe V2 (Open Inference Protocol) routes. Instances travel as BYTES
// tensors: "question" (required) and "context" (optional), shape [N]; the
// answers come back as the BYTES tensor "output".

func (s *Server) v2Live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) v2Ready(w http.ResponseWriter, r *http.Request) {
	if s.ready(r.Context()) == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// v2Models lists the model names, as KServe's server answers GET /v2/models.
func (s *Server) v2Models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]string{"models": s.names()})
}

func (s *Server) v2ModelReady(w http.ResponseWriter, r *http.Request) {
	if s.model(w, r) == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": mux.Vars(r)["name"], "ready": true})
}

type v2Tensor struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type v2TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

func (s *Server) v2Metadata(w http.ResponseWriter, r *http.Request) {
	st := s.model(w, r)
	if st == nil {
		return
	}
	versions := []string{}
	if st.backend.Info.Revision != "" {
		versions = append(versions, st.backend.Info.Revision)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": mux.Vars(r)["name"], "versions": versions, "platform": "kfllm",
		"inputs":  []v2TensorMeta{{"question", "BYTES", []int{-1}}, {"context", "BYTES", []int{-1}}},
		"outputs": []v2TensorMeta{{"output", "BYTES", []int{-1}}},
	})
}

type v2Request struct {
	ID         string                     `json:"id"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Inputs     []v2Tensor                 `json:"inputs"`
	Outputs    []json.RawMessage          `json:"outputs"`
}

// bytesTensor decodes a BYTES tensor of shape [N] (or [N,1]) into strings.
func bytesTensor(t v2Tensor) ([]string, error) {
	if t.Datatype != "BYTES" {
		return nil, badRequestf("input %q: datatype %q, want BYTES", t.Name, t.Datatype)
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return nil, badRequestf("input %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		n *= d
	}
	if len(t.Shape) == 0 || len(t.Shape) > 2 || (len(t.Shape) == 2 && t.Shape[1] != 1) {
		return nil, badRequestf("input %q: shape %v, want [N] or [N,1]", t.Name, t.Shape)
	}
	var data []string
	if err := json.Unmarshal(t.Data, &data); err != nil {
		// Row-major nested form [[...]] is allowed for [N,1].
		data = nil
		var nested [][]string
		if json.Unmarshal(t.Data, &nested) != nil {
			return nil, badRequestf("input %q: data must be a list of strings", t.Name)
		}
		for _, row := range nested {
			data = append(data, row...)
		}
	}
	if len(data) != n {
		return nil, badRequestf("input %q: shape %v holds %d elements, data has %d", t.Name, t.Shape, n, len(data))
	}
	return data, nil
}

func (s *Server) v2Infer(w http.ResponseWriter, r *http.Request) {
	st := s.model(w, r)
	if st == nil {
		return
	}
	var req v2Request
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var questions, contexts []string
	for _, t := range req.Inputs {
		data, err := bytesTensor(t)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		switch t.Name {
		case "question":
			questions = data
		case "context":
			contexts = data
		default:
			s.fail(w, r, badRequestf("unknown input %q: inputs are \"question\" and \"context\"", t.Name))
			return
		}
	}
	if len(questions) == 0 {
		s.fail(w, r, badRequestf(`input "question" is required`))
		return
	}
	if contexts != nil && len(contexts) != len(questions) {
		s.fail(w, r, badRequestf(`inputs "context" (%d) and "question" (%d) differ in length`, len(contexts), len(questions)))
		return
	}
	if len(questions) > s.opts.MaxInstances {
		s.fail(w, r, badRequestf("%d instances: at most %d per request", len(questions), s.opts.MaxInstances))
		return
	}
	vars := make([]map[string]any, len(questions))
	for i, q := range questions {
		if strings.TrimSpace(q) == "" { // as V1 refuses it
			s.fail(w, r, badRequestf(`input "question": element %d is empty`, i))
			return
		}
		c := ""
		if contexts != nil {
			c = contexts[i]
		}
		vars[i] = map[string]any{"context": c, "question": q}
	}
	params, err := parseParams(req.Parameters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	params.Adapter, _ = s.served(mux.Vars(r)["name"])
	answers, err := s.runAll(r.Context(), st.qa, vars, params)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]string, len(answers))
	ids := make([]string, len(answers))
	for i, a := range answers {
		out[i], ids[i] = a.Text, a.RunID
	}
	if len(ids) == 1 {
		w.Header().Set("X-Run-Id", ids[0])
	}
	id := req.ID
	if id == "" {
		id = uuid.NewString()
	}
	resp := map[string]any{
		"model_name": mux.Vars(r)["name"], "id": id,
		"parameters": map[string]any{"run_ids": ids},
		"outputs":    []map[string]any{{"name": "output", "datatype": "BYTES", "shape": []int{len(out)}, "data": out}},
	}
	if st.backend.Info.Revision != "" {
		resp["model_version"] = st.backend.Info.Revision
	}
	writeJSON(w, http.StatusOK, resp)
}
