package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	trainerv1alpha1 "github.com/kubeflow/trainer/v2/pkg/apis/trainer/v1alpha1"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	pytorchwebhook "github.com/kubeflow/training-operator/pkg/webhooks/pytorch"
)

// DecodePyTorchJob decodes a job the finetune launcher creates
// (internal/distjob) strictly into the training operator's PyTorchJob,
// applies the operator's defaults and runs its admission check (the
// validating webhook's ValidateCreate).
func DecodePyTorchJob(data []byte) (*kubeflowv1.PyTorchJob, error) {
	job := &kubeflowv1.PyTorchJob{}
	if err := strict(data, job); err != nil {
		return nil, err
	}
	if job.APIVersion != kubeflowv1.SchemeGroupVersion.String() || job.Kind != kubeflowv1.PyTorchJobKind {
		return nil, fmt.Errorf("PyTorchJob %s: apiVersion/kind %s/%s", job.Name, job.APIVersion, job.Kind)
	}
	kubeflowv1.SetDefaults_PyTorchJob(job)
	warn, err := (&pytorchwebhook.Webhook{}).ValidateCreate(context.Background(), job)
	if err != nil {
		return nil, fmt.Errorf("PyTorchJob %s: the training operator's webhook refuses it: %w", job.Name, err)
	}
	if len(warn) > 0 {
		return nil, fmt.Errorf("PyTorchJob %s: the training operator's webhook warns: %s", job.Name, strings.Join(warn, "; "))
	}
	return job, nil
}

// DecodeTrainJob decodes a job the finetune launcher creates strictly into
// Kubeflow Trainer's TrainJob and checks what the trainer's torch plugin
// and its webhook require of it: a runtime, a trainer with an image and
// command, no torchrun variables of its own (PET_*, which the plugin sets),
// overrides that target the runtime's "node" job.
func DecodeTrainJob(data []byte) (*trainerv1alpha1.TrainJob, error) {
	job := &trainerv1alpha1.TrainJob{}
	if err := strict(data, job); err != nil {
		return nil, err
	}
	gv := trainerv1alpha1.GroupVersion.String()
	if job.APIVersion != gv || job.Kind != trainerv1alpha1.TrainJobKind {
		return nil, fmt.Errorf("TrainJob %s: apiVersion/kind %s/%s, want %s/%s", job.Name, job.APIVersion, job.Kind, gv, trainerv1alpha1.TrainJobKind)
	}
	var errs []error
	tr := job.Spec.Trainer
	switch {
	case job.Spec.RuntimeRef.Name == "":
		errs = append(errs, errors.New("no runtimeRef.name"))
	case tr == nil || tr.Image == nil || *tr.Image == "" || len(tr.Command) == 0:
		errs = append(errs, errors.New("no trainer image or command"))
	case tr.NumNodes == nil || *tr.NumNodes < 2:
		errs = append(errs, errors.New("trainer.numNodes below 2"))
	}
	if tr != nil {
		for _, e := range tr.Env {
			if strings.HasPrefix(e.Name, "PET_") {
				errs = append(errs, fmt.Errorf("trainer.env sets %s, which the torch plugin reserves", e.Name))
			}
		}
	}
	for _, o := range job.Spec.PodSpecOverrides {
		for _, tj := range o.TargetJobs {
			if tj.Name != "node" {
				errs = append(errs, fmt.Errorf("podSpecOverrides targets job %q; the torch runtimes' trainer job is node", tj.Name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("TrainJob %s: %w", job.Name, err)
	}
	return job, nil
}
