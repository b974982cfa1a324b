// Package local runs a compiled KFP pipeline on this machine, the
// one-machine default of `pipeline local`: it reads the IR that
// `pipeline compile` (or the KFP SDK) wrote, orders the DAG, resolves the
// parameter and artifact placeholders, and runs each executor's command with
// a local binary in place of its image.
//
// Image to binary mapping: an executor whose image is
// REGISTRY/kfllm-NAME[:TAG] runs BINDIR/NAME (BINDIR defaults to bin/, where
// `make build` puts the commands); its command[0], /usr/local/bin/NAME in the
// image, is replaced by that binary and the rest of the command line is kept.
// Images of any other name are refused before anything runs.
//
// Each task's outputs live in WORKDIR/RUN/TASK/OUTPUT (artifacts are paths:
// directories for datasets and models, files for metrics), its log in
// WORKDIR/RUN/TASK/task.log, its output parameter files in
// WORKDIR/RUN/TASK/parameters/NAME, its executor output in
// WORKDIR/RUN/TASK/executor_output.json, read as the KFP launcher reads it:
// the placeholder {{$}} becomes the executor input (protojson) naming these
// files, as the KFP driver builds it (package kfp/executor).
//
// A task's environment is what its specs grant, as in a pod: the host's
// PATH, locale and TMPDIR, a HOME of the run's own, Options.PassEnv, the
// container's env, and the secrets its platform spec maps (secretAsEnv),
// from Options.Secrets or else the local variable named like the key; a
// secret given neither way stops the run before it starts. Claims
// (kfp-kubernetes' CreatePVC, mount_pvc, DeletePVC) are directories
// WORKDIR/.claims/NAME, mounted by rewriting the mount path in the task's
// arguments. Tasks run one at a time; a task with a retry policy runs again
// after its backoff; the first failure that exhausts them stops the run with
// its exit code and the tail of its log. Scheduling is not applied: resource
// requests, the accelerator and the node selector and tolerations (constant
// or from pipeline parameters such as node_selector) are read past, so a
// pipeline run here takes the same parameters as on the cluster.
//
// With caching on, a task whose cache is enabled in the IR is skipped when a
// previous run executed the same executor with the same parameter values and
// input artifacts of the same content (sha256 over the files); its outputs are
// then links to that run's outputs. The cache index is WORKDIR/.cache/.
//
// With Options.Runtime (make rehearse: runc), each task runs in its image
// instead, as the KFP v2 driver and launcher run its pod ([Launcher]): the
// image's own command, placeholders resolved to the launcher's /minio paths,
// the task directory bound as the task root, each input a writable copy at
// its producer's path, claims bound at their mount paths, the executor output
// and output parameters read from the pod's /tmp, and only the environment of
// the container spec, the KFP compiler and the secrets (no host variables).
// Caching is off there.
package local
