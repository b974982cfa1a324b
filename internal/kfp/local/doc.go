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
// WORKDIR/RUN/TASK/task.log. Secrets that the platform spec maps into the
// environment (secretAsEnv) are taken from the local environment by key name,
// and only the tasks that declare them see them. Tasks run one at a time; the
// first failure stops the run with its exit code and the tail of its log.
//
// With caching on, a task whose cache is enabled in the IR is skipped when a
// previous run executed the same executor with the same parameter values and
// input artifacts of the same content (sha256 over the files); its outputs are
// then links to that run's outputs. The cache index is WORKDIR/.cache/.
package local
