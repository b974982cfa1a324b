package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// parseParams reads KServe V1/V2 "parameters": max_new_tokens (alias
// max_tokens), temperature, top_p, top_k, repetition_penalty, seed, stop
// (a string or a list), do_sample (false forces greedy). Unknown names are
// refused: a misspelt parameter would otherwise be silently ignored.
func parseParams(raw map[string]json.RawMessage) (Params, error) {
	var p Params
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		var err error
		switch k {
		case "max_new_tokens", "max_tokens":
			var n int
			if err = json.Unmarshal(v, &n); err == nil && n < 1 {
				err = fmt.Errorf("must be at least 1")
			}
			p.MaxNewTokens = &n
		case "temperature":
			var f float64
			if err = json.Unmarshal(v, &f); err == nil && f < 0 {
				err = fmt.Errorf("must not be negative")
			}
			p.Temperature = &f
		case "top_p":
			var f float64
			if err = json.Unmarshal(v, &f); err == nil && (f <= 0 || f > 1) {
				err = fmt.Errorf("must be in (0, 1]")
			}
			p.TopP = &f
		case "top_k":
			var n int
			if err = json.Unmarshal(v, &n); err == nil && n < 0 {
				err = fmt.Errorf("must not be negative")
			}
			p.TopK = &n
		case "repetition_penalty":
			var f float64
			if err = json.Unmarshal(v, &f); err == nil && f <= 0 {
				err = fmt.Errorf("must be positive")
			}
			p.RepetitionPenalty = &f
		case "seed":
			var n int
			err = json.Unmarshal(v, &n)
			p.Seed = &n
		case "stop":
			p.Stop, err = parseStop(v)
		case "do_sample":
			var b bool
			if err = json.Unmarshal(v, &b); err == nil && !b {
				zero := 0.0
				p.Temperature = &zero
			}
		default:
			return Params{}, badRequestf("unknown parameter %q (known: max_new_tokens, max_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop, do_sample)", k)
		}
		if err != nil {
			return Params{}, badRequestf("parameter %q: %v", k, err)
		}
	}
	return p, nil
}

// parseStop accepts a string or a list of up to 4 strings, as OpenAI does.
func parseStop(v json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("must be a string or a list of strings")
	}
	if len(list) > 4 {
		return nil, fmt.Errorf("at most 4 stop strings")
	}
	out := list[:0]
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}
