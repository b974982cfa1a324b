// Package kfp defines Kubeflow Pipelines v2 pipelines in Go and compiles them
// to the KFP intermediate representation (IR): a PipelineSpec built from the
// github.com/kubeflow/pipelines/api pipelinespec protos, plus a
// platforms.kubernetes document built from the kubernetes_platform protos.
//
// A pipeline is a list of tasks, each running one container [Component]:
//
//	p := kfp.NewPipeline("demo", "what it does")
//	src := p.StringParam("source", "hf://datasets/owner/name")
//	fetch := kfp.NewComponent("fetch", "registry/kfllm-fetch:dev", "/usr/local/bin/fetch").
//		Param("--source", "source", kfp.String).
//		Output("--output-dataset", "output_dataset", kfp.Dataset)
//	p.Task(fetch, kfp.Inputs{"source": src})
//
// [Compile] turns it into protos, [Marshal] into the YAML that the KFP API
// server, the KFP SDK and `pipeline local` read, and [Unmarshal] reads such a
// YAML back. The local runner lives in kfp/local, the API client in kfp/remote.
package kfp
