// Package validate checks kfllm's deployment files without a cluster or a
// Docker daemon: the kustomize bases under manifests/ (rendered with kustomize as
// a library and decoded strictly into the real Go types of Kubernetes, KServe
// v1beta1 and Istio security/v1), and the facts that tie them together: the
// entrypoint each image runs is the command the pipeline and the manifests
// call, policy selectors match the pods, the UI's service account is the
// principal the API admits, and every variable a manifest sets is one the
// binary reads.
//
// Mesh.Evaluate (authz.go) decides requests against AuthorizationPolicies
// with Istio's documented semantics (CUSTOM, then DENY, then ALLOW), so that
// the tests can say who reaches llm-api and llm-ui once the rendered
// policies sit beside the one Kubeflow's profile controller keeps in the
// namespace (testdata/kubeflow-profile-authorizationpolicy.yaml).
//
// It is a Go module of its own (github.com/kfllm/kfllm/manifests/validate)
// so that KServe's and Istio's Kubernetes dependencies stay out of the root
// module, whose Kubeflow Pipelines dependency pins other versions. Run it
// with
//
//	cd manifests/validate && go test ./...
package validate
