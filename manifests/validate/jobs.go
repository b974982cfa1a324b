package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	trainerv1alpha1 "github.com/kubeflow/trainer/v2/pkg/apis/trainer/v1alpha1"
	trainercore "github.com/kubeflow/trainer/v2/pkg/runtime/core"
	trainertesting "github.com/kubeflow/trainer/v2/pkg/util/testing"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	pytorchwebhook "github.com/kubeflow/training-operator/pkg/webhooks/pytorch"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
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

// TrainJobSet is the JobSet Kubeflow Trainer makes of job on the
// TrainingRuntime rt: the trainer's own runtime code (its TrainJob
// webhook's checks, then the plugins that build the JobSet) run in memory
// on a controller-runtime fake client that holds rt. The JobSet
// controller makes each replicated job's pods from its pod template as it
// is, adding its own labels and annotations.
func TrainJobSet(job *trainerv1alpha1.TrainJob, rt *trainerv1alpha1.TrainingRuntime) (*jobsetv1alpha2.JobSet, error) {
	ref := job.Spec.RuntimeRef
	if ref.Kind == nil || *ref.Kind != trainerv1alpha1.TrainingRuntimeKind || ref.Name != rt.Name || job.Namespace != rt.Namespace {
		return nil, fmt.Errorf("TrainJob %s/%s: runtimeRef %s %v is not the TrainingRuntime %s/%s", job.Namespace, job.Name, ref.Name, ref.Kind, rt.Namespace, rt.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cb := trainertesting.NewClientBuilder().WithObjects(rt.DeepCopy())
	c := cb.Build()
	r, err := trainercore.NewTrainingRuntime(ctx, c, trainertesting.AsIndex(cb))
	if err != nil {
		return nil, fmt.Errorf("trainer runtime: %w", err)
	}
	// What the trainer's TrainJob webhook checks once it has found the
	// runtime (ValidateCreate: the name, then the runtime's ValidateObjects).
	errs := field.ErrorList{}
	for _, e := range validation.IsDNS1035Label(job.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), job.Name, e))
	}
	warn, verrs := r.ValidateObjects(ctx, nil, job)
	if err := append(errs, verrs...).ToAggregate(); err != nil {
		return nil, fmt.Errorf("TrainJob %s: Kubeflow Trainer's webhook refuses it: %w", job.Name, err)
	}
	if len(warn) > 0 {
		return nil, fmt.Errorf("TrainJob %s: Kubeflow Trainer's webhook warns: %s", job.Name, strings.Join(warn, "; "))
	}
	objs, err := r.NewObjects(ctx, job)
	if err != nil {
		return nil, fmt.Errorf("TrainJob %s: build the JobSet: %w", job.Name, err)
	}
	typed, err := trainertesting.ToObject(c.Scheme(), objs...)
	if err != nil {
		return nil, fmt.Errorf("TrainJob %s: the JobSet: %w", job.Name, err)
	}
	for _, o := range typed {
		if js, ok := o.(*jobsetv1alpha2.JobSet); ok {
			return js, nil
		}
	}
	return nil, fmt.Errorf("TrainJob %s: the trainer made no JobSet (%d objects)", job.Name, len(typed))
}
