package local

import (
	"fmt"
	"strings"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/encoding/protojson"
)

// executorInput is the task's executor input as the KFP driver builds it
// and the launcher passes it through {{$}}: the input parameter values, the
// input and output artifacts (name, type, URI), each output parameter's
// file, and outputs.outputFile, where the task writes its executor output.
func (rv *resolved) executorInput(t *task) (string, error) {
	in := &pipelinespec.ExecutorInput{
		Inputs: &pipelinespec.ExecutorInput_Inputs{ParameterValues: rv.params, Artifacts: map[string]*pipelinespec.ArtifactList{}},
		Outputs: &pipelinespec.ExecutorInput_Outputs{
			Parameters: map[string]*pipelinespec.ExecutorInput_OutputParameter{},
			Artifacts:  map[string]*pipelinespec.ArtifactList{},
			OutputFile: rv.outputFile,
		},
	}
	for name, p := range rv.artifacts {
		in.Inputs.Artifacts[name] = artifactList(name, t.comp.GetInputDefinitions().GetArtifacts()[name].GetArtifactType(), p)
	}
	for name, p := range rv.outArtifacts {
		in.Outputs.Artifacts[name] = artifactList(name, t.comp.GetOutputDefinitions().GetArtifacts()[name].GetArtifactType(), p)
	}
	for name, p := range rv.outParams {
		in.Outputs.Parameters[name] = &pipelinespec.ExecutorInput_OutputParameter{OutputFile: p}
	}
	b, err := protojson.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("executor input: %w", err)
	}
	return string(b), nil
}

func artifactList(name string, typ *pipelinespec.ArtifactTypeSchema, path string) *pipelinespec.ArtifactList {
	return &pipelinespec.ArtifactList{Artifacts: []*pipelinespec.RuntimeArtifact{{Name: name, Type: typ, Uri: artifactURI(path)}}}
}

// artifactURI is the URI of an artifact at path: under a Runtime, the
// object store URI the launcher maps to that path (/minio/X is minio://X);
// else a file:// URI.
func artifactURI(path string) string {
	for dir, scheme := range map[string]string{"/gcs/": "gs://", "/minio/": "minio://", "/s3/": "s3://"} {
		if rest, ok := strings.CutPrefix(path, dir); ok {
			return scheme + rest
		}
	}
	return "file://" + path
}
