package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds the special tokens a model expects around a single
// sequence (HF's PostProcessor, for ids only; pairs are not needed here).
type postProcessor interface {
	process(ids []int) []int
}

type templateProcessor struct {
	pieces []templatePiece
}

type templatePiece struct {
	seq bool  // the sequence itself
	ids []int // a special token's ids
}

func (p templateProcessor) process(ids []int) []int {
	n := len(ids)
	for _, pc := range p.pieces {
		n += len(pc.ids)
	}
	out := make([]int, 0, n)
	for _, pc := range p.pieces {
		if pc.seq {
			out = append(out, ids...)
		} else {
			out = append(out, pc.ids...)
		}
	}
	return out
}

type identityProcessor struct{}

func (identityProcessor) process(ids []int) []int { return ids }

type sequenceProcessor []postProcessor

func (s sequenceProcessor) process(ids []int) []int {
	for _, p := range s {
		ids = p.process(ids)
	}
	return ids
}

func buildPostProcessor(raw json.RawMessage) (postProcessor, error) {
	typ, err := typed(raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "", "ByteLevel":
		return identityProcessor{}, nil
	case "TemplateProcessing":
		var c struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		var p templateProcessor
		for _, it := range c.Single {
			switch {
			case it.Sequence != nil:
				p.pieces = append(p.pieces, templatePiece{seq: true})
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("template: special token %q missing from special_tokens", it.SpecialToken.ID)
				}
				p.pieces = append(p.pieces, templatePiece{ids: st.IDs})
			default:
				return nil, fmt.Errorf("template: piece is neither SpecialToken nor Sequence")
			}
		}
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep [2]any `json:"sep"`
			Cls [2]any `json:"cls"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		sep, ok1 := c.Sep[1].(float64)
		cls, ok2 := c.Cls[1].(float64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: sep and cls need [token, id]", typ)
		}
		return templateProcessor{pieces: []templatePiece{{ids: []int{int(cls)}}, {seq: true}, {ids: []int{int(sep)}}}}, nil
	case "Sequence":
		var c struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		var s sequenceProcessor
		for _, sub := range c.Processors {
			p, err := buildPostProcessor(sub)
			if err != nil {
				return nil, err
			}
			s = append(s, p)
		}
		return s, nil
	}
	return nil, fmt.Errorf("post-processor %q is not supported", typ)
}
