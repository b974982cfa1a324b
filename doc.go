// Package kfllm fine-tunes a causal language model on Kubeflow Pipelines and
// serves it on KServe, in Go. The code lives in the commands (components/,
// pipeline/, serving/, ui/) and the packages under internal/; this root
// package holds the one list of those commands (components.txt, read by
// Components, the Makefile and the demo) and the repository-wide checks
// (depcheck_test.go, components_test.go, standalone_test.go).
package kfllm
