package kfp

import (
	"fmt"
	"strconv"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// ParseParam reads a command-line value as a parameter of type t.
func ParseParam(s string, t pipelinespec.ParameterType_ParameterTypeEnum) (*structpb.Value, error) {
	switch t {
	case pipelinespec.ParameterType_STRING:
		return structpb.NewStringValue(s), nil
	case pipelinespec.ParameterType_NUMBER_INTEGER:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return structpb.NewNumberValue(float64(n)), nil
	case pipelinespec.ParameterType_NUMBER_DOUBLE:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return structpb.NewNumberValue(f), nil
	case pipelinespec.ParameterType_BOOLEAN:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", s)
		}
		return structpb.NewBoolValue(b), nil
	case pipelinespec.ParameterType_LIST, pipelinespec.ParameterType_STRUCT:
		v := &structpb.Value{}
		if err := protojson.Unmarshal([]byte(s), v); err != nil {
			return nil, fmt.Errorf("%q is not JSON: %w", s, err)
		}
		// The driver reads a STRUCT as an object and a LIST as an array
		// (a node selector, tolerations): anything else fails the task late.
		if t == pipelinespec.ParameterType_STRUCT && v.GetStructValue() == nil {
			return nil, fmt.Errorf("%q is not a JSON object", s)
		}
		if t == pipelinespec.ParameterType_LIST && v.GetListValue() == nil {
			return nil, fmt.Errorf("%q is not a JSON array", s)
		}
		return v, nil
	}
	return nil, fmt.Errorf("parameter type %s is not supported", t)
}
