package distjob

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// Runtime names the operator that runs the ranks: the pipeline parameter
// distributed_runtime.
type Runtime string

// The runtimes [Spec.Object] builds jobs for.
const (
	PyTorchJob Runtime = "pytorchjob" // training operator, kubeflow.org/v1
	TrainJob   Runtime = "trainjob"   // Kubeflow Trainer, trainer.kubeflow.org/v1alpha1
)

// ParseRuntime reads a distributed_runtime value.
func ParseRuntime(s string) (Runtime, error) {
	switch r := Runtime(s); r {
	case PyTorchJob, TrainJob:
		return r, nil
	}
	return "", fmt.Errorf("distributed runtime %q: want %s or %s", s, PyTorchJob, TrainJob)
}

// API group, version and plural of each runtime's job.
func (r Runtime) api() (group, version, kind, plural string) {
	if r == TrainJob {
		return "trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs"
	}
	return "kubeflow.org", "v1", "PyTorchJob", "pytorchjobs"
}

// APIVersion is the job's apiVersion.
func (r Runtime) APIVersion() string { g, v, _, _ := r.api(); return g + "/" + v }

// Kind is the job's kind.
func (r Runtime) Kind() string { _, _, k, _ := r.api(); return k }

// Names the operators expect: the PyTorchJob container and its port
// (kubeflowv1.PyTorchJobDefaultContainerName, PyTorchJobDefaultPortName and
// PyTorchJobDefaultPort), the TrainJob's trainer container and replicated
// job in the torch runtimes ("node"), and the TrainingRuntime kfllm ships
// in manifests/trainjob-runtime: Kubeflow Trainer's torch runtime with
// Istio's sidecar turned off in the pods (a TrainJob of trainer v2.0.0 has
// no field that reaches its pods' annotations; the runtime's pod template
// does).
const (
	PyTorchContainer       = "pytorch"
	PyTorchPortName        = "pytorchjob-port"
	PyTorchPort            = 23456
	TrainerNode            = "node"
	DefaultTrainingRuntime = "kfllm-torch-distributed"
)

// The kinds of runtime a TrainJob refers to: a TrainingRuntime in the
// job's namespace, or a ClusterTrainingRuntime.
const (
	TrainingRuntimeKind        = "TrainingRuntime"
	ClusterTrainingRuntimeKind = "ClusterTrainingRuntime"
)

// Volume is the name of the shared claim's volume in the job's pods.
const Volume = "shared"

// Spec is a job that runs Workers ranks of Command Args in Image, each pod
// mounting Claim at MountPath.
type Spec struct {
	Runtime   Runtime
	Name      string
	Namespace string
	Workers   int
	Image     string
	Command   []string
	Args      []string
	Claim     string
	MountPath string
	Env       []EnvVar
	Resources Resources
	// NodeSelector and Tolerations (Kubernetes' JSON tolerations) place
	// the pods, as the finetune task's own.
	NodeSelector map[string]string
	Tolerations  []map[string]any
	// Owner, when set, is the launching pod: the job is garbage-collected
	// with it.
	Owner *Owner
	// TrainingRuntime is a TrainJob's runtime (default
	// DefaultTrainingRuntime), of kind TrainingRuntimeKind (default
	// TrainingRuntimeKind: in the job's namespace).
	TrainingRuntime, TrainingRuntimeKind string
}

// EnvVar is a container variable: Value, or the key SecretKey of secret
// SecretName (optional: a missing secret leaves it unset).
type EnvVar struct {
	Name, Value           string
	SecretName, SecretKey string
}

// Resources are each rank's requests and limits (quantities as Kubernetes
// writes them: "4", "16G"); Accelerator is a resource name such as
// nvidia.com/gpu, requested AcceleratorCount times.
type Resources struct {
	CPURequest, CPULimit       string
	MemoryRequest, MemoryLimit string
	Accelerator                string
	AcceleratorCount           int
}

// Owner is the pod that launched the job.
type Owner struct{ Name, UID string }

var dnsLabel = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// Labels on every job kfllm creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelClaim names the job's shared claim (its first 63 characters,
	// or a hash when longer): a launcher replaces the jobs still running
	// on its claim, which a retried task's lost predecessor left.
	LabelClaim = "kfllm.io/checkpoint-claim"
)

// ClaimLabel is the value of [LabelClaim] for claim.
func ClaimLabel(claim string) string {
	if len(claim) <= 63 {
		return claim
	}
	h := sha256.Sum256([]byte(claim))
	return "h-" + hex.EncodeToString(h[:8])
}

func (s Spec) check() error {
	switch {
	case s.Runtime != PyTorchJob && s.Runtime != TrainJob:
		return fmt.Errorf("job %s: runtime %q: want %s or %s", s.Name, s.Runtime, PyTorchJob, TrainJob)
	case len(s.Name) > 50 || !dnsLabel.MatchString(s.Name):
		// The pods' names add "-master-0"/"-worker-N" or "-node-0-N-xxxxx".
		return fmt.Errorf("job name %q: want a DNS label of at most 50 characters", s.Name)
	case s.Workers < 2:
		return fmt.Errorf("job %s: %d workers: a job is for 2 or more", s.Name, s.Workers)
	case s.Image == "" || len(s.Command) == 0:
		return fmt.Errorf("job %s: no image or command", s.Name)
	case s.Claim == "" || s.MountPath == "":
		return fmt.Errorf("job %s: no shared claim or mount path", s.Name)
	case s.TrainingRuntimeKind != "" && s.TrainingRuntimeKind != TrainingRuntimeKind && s.TrainingRuntimeKind != ClusterTrainingRuntimeKind:
		return fmt.Errorf("job %s: training runtime kind %q: want %s or %s", s.Name, s.TrainingRuntimeKind, TrainingRuntimeKind, ClusterTrainingRuntimeKind)
	}
	return nil
}

// Object returns the job as the JSON object the API server takes.
func (s Spec) Object() (map[string]any, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	meta := map[string]any{
		"name":   s.Name,
		"labels": map[string]any{LabelName: "kfllm-finetune", LabelManagedBy: "kfllm", LabelClaim: ClaimLabel(s.Claim)},
	}
	if s.Namespace != "" {
		meta["namespace"] = s.Namespace
	}
	if s.Owner != nil {
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": "v1", "kind": "Pod", "name": s.Owner.Name, "uid": s.Owner.UID,
		}}
	}
	obj := map[string]any{"apiVersion": s.Runtime.APIVersion(), "kind": s.Runtime.Kind(), "metadata": meta}
	if s.Runtime == TrainJob {
		obj["spec"] = s.trainJobSpec()
	} else {
		obj["spec"] = s.pytorchJobSpec()
	}
	return obj, nil
}

// JSON is [Spec.Object] encoded, indented.
func (s Spec) JSON() ([]byte, error) {
	o, err := s.Object()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", s.Name, err)
	}
	return append(b, '\n'), nil
}

func (s Spec) env() []any {
	var out []any
	for _, e := range s.Env {
		if e.SecretName != "" {
			out = append(out, map[string]any{"name": e.Name, "valueFrom": map[string]any{
				"secretKeyRef": map[string]any{"name": e.SecretName, "key": e.SecretKey, "optional": true},
			}})
			continue
		}
		out = append(out, map[string]any{"name": e.Name, "value": e.Value})
	}
	return out
}

func (s Spec) resources() map[string]any {
	req, lim := map[string]any{}, map[string]any{}
	set := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	r := s.Resources
	set(req, "cpu", r.CPURequest)
	set(req, "memory", r.MemoryRequest)
	set(lim, "cpu", r.CPULimit)
	set(lim, "memory", r.MemoryLimit)
	if r.Accelerator != "" && r.AcceleratorCount > 0 {
		lim[r.Accelerator] = strconv.Itoa(r.AcceleratorCount)
	}
	out := map[string]any{}
	if len(req) > 0 {
		out["requests"] = req
	}
	if len(lim) > 0 {
		out["limits"] = lim
	}
	return out
}

func (s Spec) volumes() []any {
	return []any{map[string]any{"name": Volume, "persistentVolumeClaim": map[string]any{"claimName": s.Claim}}}
}

func (s Spec) mounts() []any {
	return []any{map[string]any{"name": Volume, "mountPath": s.MountPath}}
}

func (s Spec) tolerations() []any {
	out := make([]any, len(s.Tolerations))
	for i, t := range s.Tolerations {
		out[i] = t
	}
	return out
}

func (s Spec) nodeSelector() map[string]any {
	m := map[string]any{}
	keys := make([]string, 0, len(s.NodeSelector))
	for k := range s.NodeSelector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m[k] = s.NodeSelector[k]
	}
	return m
}

func strs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// pytorchJobSpec: one Master (rank 0) and Workers-1 Worker replicas, each
// pod one rank. restartPolicy Never: a failed rank fails the job, and the
// KFP task's retry policy starts a new one that resumes from the last
// checkpoint on the shared claim.
func (s Spec) pytorchJobSpec() map[string]any {
	replica := func(n int) map[string]any {
		c := map[string]any{
			"name":         PyTorchContainer,
			"image":        s.Image,
			"command":      strs(s.Command),
			"args":         strs(s.Args),
			"ports":        []any{map[string]any{"name": PyTorchPortName, "containerPort": PyTorchPort}},
			"resources":    s.resources(),
			"volumeMounts": s.mounts(),
		}
		if env := s.env(); len(env) > 0 {
			c["env"] = env
		}
		pod := map[string]any{
			"containers":    []any{c},
			"volumes":       s.volumes(),
			"restartPolicy": "Never",
		}
		if len(s.NodeSelector) > 0 {
			pod["nodeSelector"] = s.nodeSelector()
		}
		if len(s.Tolerations) > 0 {
			pod["tolerations"] = s.tolerations()
		}
		return map[string]any{
			"replicas":      n,
			"restartPolicy": "Never",
			"template": map[string]any{
				// Istio's sidecar would outlive the rank (the pod never
				// completes) and start after the rendezvous begins.
				"metadata": map[string]any{"annotations": map[string]any{"sidecar.istio.io/inject": "false"}},
				"spec":     pod,
			},
		}
	}
	return map[string]any{
		"runPolicy": map[string]any{"backoffLimit": 0, "cleanPodPolicy": "None", "ttlSecondsAfterFinished": 86400},
		"pytorchReplicaSpecs": map[string]any{
			"Master": replica(1),
			"Worker": replica(s.Workers - 1),
		},
	}
}

// trainJobSpec: Workers nodes of one process each on the torch runtime,
// the shared claim added to the trainer's pods through podSpecOverrides.
// The pods' Istio annotation comes from the runtime (DefaultTrainingRuntime):
// trainer v2.0.0 copies spec.annotations to the JobSet only, whose
// controller does not pass them on to the pods, and podSpecOverrides has no
// metadata.
func (s Spec) trainJobSpec() map[string]any {
	trainer := map[string]any{
		"image":          s.Image,
		"command":        strs(s.Command),
		"args":           strs(s.Args),
		"numNodes":       s.Workers,
		"numProcPerNode": 1,
	}
	if r := s.resources(); len(r) > 0 {
		trainer["resourcesPerNode"] = r
	}
	if env := s.env(); len(env) > 0 {
		trainer["env"] = env
	}
	override := map[string]any{
		"targetJobs": []any{map[string]any{"name": TrainerNode}},
		"volumes":    s.volumes(),
		"containers": []any{map[string]any{"name": TrainerNode, "volumeMounts": s.mounts()}},
	}
	if len(s.NodeSelector) > 0 {
		override["nodeSelector"] = s.nodeSelector()
	}
	if len(s.Tolerations) > 0 {
		override["tolerations"] = s.tolerations()
	}
	rt, kind := s.TrainingRuntime, s.TrainingRuntimeKind
	if rt == "" {
		rt = DefaultTrainingRuntime
	}
	if kind == "" {
		kind = TrainingRuntimeKind
	}
	return map[string]any{
		"runtimeRef":       map[string]any{"name": rt, "apiGroup": "trainer.kubeflow.org", "kind": kind},
		"trainer":          trainer,
		"podSpecOverrides": []any{override},
	}
}
