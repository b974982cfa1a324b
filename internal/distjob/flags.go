package distjob

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Flags are the launcher's own finetune flags; every other flag set on the
// task is a training flag, passed on to the ranks.
type Flags struct {
	Workers          int
	Runtime          string
	Claim            string
	Image            string
	Command          string
	TrainingRuntime  string
	RuntimeKind      string
	CPURequest       string
	CPULimit         string
	MemoryRequest    string
	MemoryLimit      string
	Accelerator      string
	AcceleratorCount int
	NodeSelector     string
	Tolerations      string
	HFSecret         string
	Timeout          time.Duration
	Poll             time.Duration
}

// Register adds the launcher's flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.IntVar(&f.Workers, "workers", 1, "data-parallel ranks; above 1, run them as a Kubernetes job (--distributed-runtime) and wait for it")
	fs.StringVar(&f.Runtime, "distributed-runtime", string(PyTorchJob), "workers > 1: pytorchjob (training operator, kubeflow.org/v1) or trainjob (Kubeflow Trainer, trainer.kubeflow.org/v1alpha1)")
	fs.StringVar(&f.Claim, "shared-claim", "", "workers > 1: the ReadWriteMany PersistentVolumeClaim mounted at --checkpoint-dir, mounted at the same path in every rank's pod (default: the one this pod, KFP_POD_NAME, mounts there)")
	fs.StringVar(&f.Image, "worker-image", "", "workers > 1: the ranks' image (this one)")
	fs.StringVar(&f.Command, "worker-command", "/usr/local/bin/finetune", "workers > 1: the ranks' command in --worker-image")
	fs.StringVar(&f.TrainingRuntime, "training-runtime", DefaultTrainingRuntime, "trainjob: the TrainJob's runtime (the default is manifests/trainjob-runtime's, whose pods get no Istio sidecar)")
	fs.StringVar(&f.RuntimeKind, "training-runtime-kind", TrainingRuntimeKind, "trainjob: the kind of --training-runtime: TrainingRuntime (in the job's namespace) or ClusterTrainingRuntime")
	fs.StringVar(&f.CPURequest, "worker-cpu-request", "", "workers > 1: each rank's CPU request")
	fs.StringVar(&f.CPULimit, "worker-cpu-limit", "", "workers > 1: each rank's CPU limit")
	fs.StringVar(&f.MemoryRequest, "worker-memory-request", "", "workers > 1: each rank's memory request")
	fs.StringVar(&f.MemoryLimit, "worker-memory-limit", "", "workers > 1: each rank's memory limit")
	fs.StringVar(&f.Accelerator, "worker-accelerator", "", "workers > 1: each rank's accelerator resource (nvidia.com/gpu; empty: none)")
	fs.IntVar(&f.AcceleratorCount, "worker-accelerator-count", 1, "workers > 1: accelerators per rank")
	fs.StringVar(&f.NodeSelector, "worker-node-selector", "", "workers > 1: the ranks' node selector, a JSON object")
	fs.StringVar(&f.Tolerations, "worker-tolerations", "", "workers > 1: the ranks' tolerations, a JSON list")
	fs.StringVar(&f.HFSecret, "worker-hf-secret", "", "workers > 1: the secret whose key HF_TOKEN the ranks get as HF_TOKEN")
	fs.DurationVar(&f.Timeout, "workers-timeout", 72*time.Hour, "workers > 1: bound on the job's run (0: none)")
	fs.DurationVar(&f.Poll, "workers-poll", 10*time.Second, "workers > 1: how often the job's status is read")
}

// Owns reports whether the flag name is one of the launcher's, or one a
// rank in a job must not have: nproc-per-node, and executor-input (the KFP
// executor input names paths of the launcher's pod; the launcher writes the
// executor output itself).
func (f *Flags) Owns(name string) bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	(&Flags{}).Register(fs)
	return fs.Lookup(name) != nil || name == "nproc-per-node" || name == "executor-input"
}

// Env is what [Flags.Plan] reads from the launching pod's environment.
type Env struct {
	Namespace string
	// PodName and PodUID (KFP_POD_NAME, KFP_POD_UID) own the job.
	PodName, PodUID string
	// HFEndpoint (HF_ENDPOINT) is passed on to the ranks.
	HFEndpoint string
}

// Plan returns the job the flags describe for the training flags rank,
// the checkpoint directory mountPath being where the shared claim is.
func (f *Flags) Plan(rank []Flag, mountPath string, env Env) (Plan, error) {
	rt, err := ParseRuntime(f.Runtime)
	if err != nil {
		return Plan{}, err
	}
	if f.Claim == "" || f.Image == "" {
		return Plan{}, fmt.Errorf("--workers %d needs a shared claim (ReadWriteMany, mounted at --checkpoint-dir) and --worker-image", f.Workers)
	}
	s := Spec{
		Runtime: rt, Namespace: env.Namespace, Workers: f.Workers,
		Image: f.Image, Command: strings.Fields(f.Command),
		Claim: f.Claim, MountPath: mountPath,
		TrainingRuntime: f.TrainingRuntime, TrainingRuntimeKind: f.RuntimeKind,
		Resources: Resources{CPURequest: f.CPURequest, CPULimit: f.CPULimit, MemoryRequest: f.MemoryRequest,
			MemoryLimit: f.MemoryLimit, Accelerator: f.Accelerator, AcceleratorCount: f.AcceleratorCount},
	}
	s.Name = JobName(env.PodUID + env.PodName)
	if env.PodName != "" && env.PodUID != "" {
		s.Owner = &Owner{Name: env.PodName, UID: env.PodUID}
	}
	if f.HFSecret != "" {
		s.Env = append(s.Env, EnvVar{Name: "HF_TOKEN", SecretName: f.HFSecret, SecretKey: "HF_TOKEN"})
	}
	if env.HFEndpoint != "" {
		s.Env = append(s.Env, EnvVar{Name: "HF_ENDPOINT", Value: env.HFEndpoint})
	}
	if strings.TrimSpace(f.NodeSelector) != "" {
		if err := json.Unmarshal([]byte(f.NodeSelector), &s.NodeSelector); err != nil {
			return Plan{}, fmt.Errorf("--worker-node-selector %q: want a JSON object of strings: %w", f.NodeSelector, err)
		}
	}
	if strings.TrimSpace(f.Tolerations) != "" {
		if err := json.Unmarshal([]byte(f.Tolerations), &s.Tolerations); err != nil {
			return Plan{}, fmt.Errorf("--worker-tolerations %q: want a JSON list of objects: %w", f.Tolerations, err)
		}
	}
	return MakePlan(s, rank)
}

// Run plans the job, connects to the API server of the pod it runs in
// (service-account files under saDir, default [ServiceAccountDir]) and
// launches it.
func (f *Flags) Run(ctx context.Context, rank []Flag, mountPath string, getenv func(string) string, saDir string, progress io.Writer) error {
	c, ns, err := InCluster(getenv, saDir)
	if err != nil {
		return err
	}
	env := Env{Namespace: ns, PodName: getenv("KFP_POD_NAME"), PodUID: getenv("KFP_POD_UID"), HFEndpoint: getenv("HF_ENDPOINT")}
	if f.Claim == "" {
		if env.PodName == "" {
			return fmt.Errorf("--workers %d: no --shared-claim, and KFP_POD_NAME is not set to find the claim mounted at %s", f.Workers, mountPath)
		}
		claim, uid, err := c.PodClaim(ctx, ns, env.PodName, mountPath)
		if err != nil {
			return fmt.Errorf("--workers %d: find the shared claim: %w", f.Workers, err)
		}
		f.Claim = claim
		if env.PodUID == "" {
			env.PodUID = uid
		}
	}
	p, err := f.Plan(rank, mountPath, env)
	if err != nil {
		return err
	}
	l := &Launcher{Client: c, Poll: f.Poll, Timeout: f.Timeout, Progress: progress}
	return l.Launch(ctx, p)
}
