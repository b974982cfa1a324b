package kserve

import (
	"encoding/json"
	"testing"
)

// The bodies as docs/design.md §6 writes them: a temperature of 0 that a
// client sets is sent (greedy), an unset parameter is left to the server,
// and a done event carries its zero counts.
func TestWireFormat(t *testing.T) {
	n, zero, in, out, ms := 16, 0.0, 0, 3, int64(12)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{PredictRequest{Instances: []Instance{{Context: "c", Question: "q"}}, Parameters: Parameters{MaxNewTokens: &n, Temperature: &zero}},
			`{"instances":[{"context":"c","question":"q"}],"parameters":{"max_new_tokens":16,"temperature":0}}`},
		{PredictRequest{Instances: []Instance{{Question: "q"}}}, `{"instances":[{"context":"","question":"q"}],"parameters":{}}`},
		{PredictResponse{Predictions: []string{"a"}, RunIDs: []string{"r"}}, `{"predictions":["a"],"run_ids":["r"]}`},
		{StreamEvent{Token: "x"}, `{"token":"x"}`},
		{StreamEvent{Done: true, Prediction: "p", RunID: "r", TokensIn: &in, TokensOut: &out, LatencyMS: &ms, FinishReason: "stop"},
			`{"done":true,"prediction":"p","run_id":"r","tokens_in":0,"tokens_out":3,"latency_ms":12,"finish_reason":"stop"}`},
		{FeedbackRequest{RunID: "r", Score: &zero}, `{"run_id":"r","score":0,"comment":""}`},
		{Error{Error: "Model with name m does not exist."}, `{"error":"Model with name m does not exist."}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T: %s, %v\nwant %s", tc.v, b, err, tc.want)
		}
	}
}
