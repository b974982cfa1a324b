// Package kfllm fine-tunes a causal language model on Kubeflow Pipelines and
// serves it on KServe, in Go. The code lives in the commands (components/,
// pipeline/, serving/, ui/) and the packages under internal/; this root
// package holds only the repository-wide checks (depcheck_test.go,
// standalone_test.go).
package kfllm
