package kfp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// Marshal writes the compiled pipeline as KFP reads it: the PipelineSpec as a
// YAML document, then the PlatformSpec as a second one when present. Keys are
// the protos' JSON (camelCase) names, sorted as the KFP SDK sorts them, so the
// same pipeline always gives the same bytes.
func Marshal(c *Compiled) ([]byte, error) {
	if c == nil || c.Spec == nil {
		return nil, errors.New("marshal pipeline: no spec")
	}
	var buf bytes.Buffer
	buf.WriteString(header(c.Spec))
	if err := writeYAML(&buf, c.Spec); err != nil {
		return nil, fmt.Errorf("marshal pipeline spec: %w", err)
	}
	if c.Platform != nil {
		buf.WriteString("---\n")
		if err := writeYAML(&buf, c.Platform); err != nil {
			return nil, fmt.Errorf("marshal platform spec: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// Unmarshal reads a compiled pipeline YAML (ours or the KFP SDK's): the
// PipelineSpec document and an optional PlatformSpec document. Fields the
// pinned protos do not know are an error, not silently dropped.
func Unmarshal(data []byte) (*Compiled, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	out := &Compiled{}
	for i := 0; ; i++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read pipeline yaml document %d: %w", i+1, err)
		}
		if doc == nil {
			continue
		}
		j, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("read pipeline yaml document %d: %w", i+1, err)
		}
		switch {
		case out.Spec == nil:
			out.Spec = &pipelinespec.PipelineSpec{}
			if err := protojson.Unmarshal(j, out.Spec); err != nil {
				return nil, fmt.Errorf("read pipeline spec: %w", err)
			}
		case out.Platform == nil:
			out.Platform = &pipelinespec.PlatformSpec{}
			if err := protojson.Unmarshal(j, out.Platform); err != nil {
				return nil, fmt.Errorf("read platform spec: %w", err)
			}
		default:
			return nil, fmt.Errorf("read pipeline yaml: unexpected document %d", i+1)
		}
	}
	if out.Spec == nil || out.Spec.Root == nil {
		return nil, errors.New("read pipeline yaml: no pipeline spec (root missing)")
	}
	return out, nil
}

// header is the comment block the KFP SDK writes above a compiled pipeline.
func header(s *pipelinespec.PipelineSpec) string {
	var b strings.Builder
	b.WriteString("# PIPELINE DEFINITION\n")
	fmt.Fprintf(&b, "# Name: %s\n", oneLine(s.GetPipelineInfo().GetName()))
	if d := s.GetPipelineInfo().GetDescription(); d != "" {
		fmt.Fprintf(&b, "# Description: %s\n", oneLine(d))
	}
	params := s.GetRoot().GetInputDefinitions().GetParameters()
	if len(params) > 0 {
		b.WriteString("# Inputs:\n")
		names := make([]string, 0, len(params))
		for n := range params {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p := params[n]
			def := ""
			if p.DefaultValue != nil {
				// encoding/json, not protojson, whose spacing varies by
				// build: the header is byte-stable (a STRUCT default is
				// written with sorted keys).
				var j bytes.Buffer
				enc := json.NewEncoder(&j)
				enc.SetEscapeHTML(false)
				enc.Encode(p.DefaultValue.AsInterface())
				def = fmt.Sprintf(" [Default: %s]", bytes.TrimSpace(j.Bytes()))
			}
			fmt.Fprintf(&b, "#    %s: %s%s\n", n, p.ParameterType, def)
		}
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeYAML encodes m through protojson (the proto JSON names) and then as
// YAML with sorted keys.
func writeYAML(w io.Writer, m proto.Message) error {
	j, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(node(v)); err != nil {
		return err
	}
	return enc.Close()
}

// node builds a YAML node from decoded JSON with map keys sorted. Floats
// always carry a '.' so that YAML 1.1 readers (PyYAML, which the KFP SDK
// uses) read them as floats too.
func node(v any) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, node(x[k]))
		}
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			n.Content = append(n.Content, node(e))
		}
		if len(x) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n
	case json.Number:
		s := x.String()
		if !strings.ContainsAny(s, ".eE") {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: s}
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && !strings.Contains(s[:i], ".") {
			s = s[:i] + ".0" + s[i:]
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(x)}
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}
