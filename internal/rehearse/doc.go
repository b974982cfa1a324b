// Package rehearse runs the kfllm CPU images on this machine under runc, as
// the cluster would run them (make rehearse):
//
//  1. every component image starts its binary (--help) as uid 65532 on a
//     read-only root with a writable /tmp;
//  2. the compiled pipeline YAML runs task by task, each task in its image,
//     as the KFP v2 launcher runs it (package kfp/local with a [Runc]
//     runtime: the executor's command with placeholders resolved to the
//     launcher's paths under /minio, only the environment the task's specs
//     grant, secrets from a local file, claims bound at their mount paths),
//     on the data and parameters of `make demo`; the held-out scores are
//     printed from finetune's metrics;
//  3. the serving container of manifests/api/inferenceservice.yaml (its
//     command, args, env with the ConfigMap and Secret values resolved,
//     securityContext, volume mounts; its probes called) serves the model
//     the pipeline uploaded, and answers a KServe V1 predict;
//  4. the UI container of manifests/ui/deployment.yaml, pointed at it,
//     answers the demo's held-out question, and the UI's browser test
//     (ui/server TestBrowserDeployedUI) runs against it.
//
// What differs from a cluster, and why: containers share the host's network
// (no CNI here), so the servers listen on free loopback ports instead of
// 8080 and 8081 and the UI reaches the API at 127.0.0.1 instead of the
// Service llm-api-predictor; the model is mounted at /mnt/models (what
// KServe's storage initializer leaves, the manifest's documented
// alternative) instead of downloaded by --model-id from the Hub, which is
// not reachable here; the pipeline's data, base model and the Hub stand-in
// (a bare git repository) are bound at /data, /models/base and /hub, where
// on a cluster they are Hub ids fetched over the network.
package rehearse
