// Package distjob runs finetune's data-parallel ranks as a Kubeflow job:
// a training operator PyTorchJob (kubeflow.org/v1) or a Kubeflow Trainer
// TrainJob (trainer.kubeflow.org/v1alpha1) whose pods run the finetune image
// with the launching task's own training flags (docs/design.md §5,
// "workers").
//
// KFP v2 has no resource op, so the pipeline's finetune task is the
// launcher when the pipeline parameter workers is above 1:
//
//   - [Plan] turns the task's flags into a [Spec]: the inputs (token shards,
//     a local base model, a local QA eval file) and outputs (model,
//     metrics, report) move to a staging directory on the shared
//     ReadWriteMany claim the task mounts at its checkpoint directory, and
//     every pod mounts the same claim at the same path;
//   - [Spec.Object] is the job as JSON, with only the fields the operators'
//     Go types define (manifests/validate decodes it strictly into them);
//   - [Client] talks to the API server with the pod's service-account
//     token over REST (no client-go: the root module's k8s pins are KFP's);
//   - [Launch] stages the inputs, creates the job, waits for its Succeeded
//     (PyTorchJob) or Complete (TrainJob) condition with a progress line per
//     change, deletes it when cancelled or timed out, and copies rank 0's
//     outputs into the task's own output paths, so upload is unchanged.
//
// The operator sets WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT (a
// TrainJob: torchrun's PET_* variables, which internal/dist also reads);
// rank 0 writes the outputs, checkpoints and metrics.
package distjob
