package validate

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	corev1 "k8s.io/api/core/v1"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
)

// The jobs the pipeline's finetune task launches with workers=2 (written
// by internal/kfp/finetune's TestWorkersCompileIntoJobs from the compiled
// GPU variant, kfllm-finetune-gpu.yaml).
var (
	pytorchJobGolden = repoPath("internal", "kfp", "testdata", "workers_pytorchjob.json")
	trainJobGolden   = repoPath("internal", "kfp", "testdata", "workers_trainjob.json")
	gpuPipeline      = repoPath("internal", "kfp", "testdata", "kfllm-finetune-gpu.yaml")
)

const checkpointMount = "/kfllm/checkpoints"

func finetuneExecutor(t *testing.T) Executor {
	t.Helper()
	exs, err := PipelineExecutors(gpuPipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		if ex.Name == "exec-finetune" {
			return ex
		}
	}
	t.Fatalf("%s has no exec-finetune", gpuPipeline)
	return Executor{}
}

// checkRank checks one rank's pod: the pipeline's finetune image and
// entrypoint, the shared claim at the checkpoint directory, training flags
// only (no launcher flag, which would make the rank launch a job itself).
func checkRank(t *testing.T, where string, ex Executor, image string, command, args []string, mounts []corev1.VolumeMount, vols []corev1.Volume) {
	t.Helper()
	if image != ex.Image || !slices.Equal(command, ex.Command) {
		t.Errorf("%s runs %s %v, the pipeline's finetune runs %s %v", where, image, command, ex.Image, ex.Command)
	}
	if !slices.Contains(args, "--checkpoint-dir="+checkpointMount) {
		t.Errorf("%s: args %v lack --checkpoint-dir=%s", where, args, checkpointMount)
	}
	for _, a := range args {
		for _, launcher := range []string{"--workers", "--distributed-runtime", "--shared-claim", "--nproc-per-node"} {
			if a == launcher || strings.HasPrefix(a, launcher+"=") {
				t.Errorf("%s: rank argument %s", where, a)
			}
		}
		if strings.HasPrefix(a, "--input-dataset=") || strings.HasPrefix(a, "--output-model-dir=") {
			if !strings.HasPrefix(strings.SplitN(a, "=", 2)[1], checkpointMount+"/") {
				t.Errorf("%s: %s is not on the shared claim", where, a)
			}
		}
	}
	var claim string
	for _, v := range vols {
		if v.PersistentVolumeClaim != nil {
			claim = v.Name
		}
	}
	mounted := false
	for _, m := range mounts {
		mounted = mounted || (m.Name == claim && claim != "" && m.MountPath == checkpointMount)
	}
	if !mounted {
		t.Errorf("%s: no claim volume mounted at %s (volumes %v, mounts %v)", where, checkpointMount, vols, mounts)
	}
}

// TestWorkersPyTorchJob: the compiled pipeline's PyTorchJob decodes
// strictly into the training operator's type, passes its defaulting and
// webhook, and has two ranks (a Master and one Worker) of the pipeline's
// finetune image.
func TestWorkersPyTorchJob(t *testing.T) {
	data, err := os.ReadFile(pytorchJobGolden)
	if err != nil {
		t.Fatal(err)
	}
	job, err := DecodePyTorchJob(data)
	if err != nil {
		t.Fatal(err)
	}
	ex := finetuneExecutor(t)
	world := int32(0)
	for rt, r := range job.Spec.PyTorchReplicaSpecs {
		world += *r.Replicas
		if r.RestartPolicy != kubeflowv1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s: a failed rank must fail the job (the KFP retry resumes it)", rt, r.RestartPolicy)
		}
		if got := r.Template.Annotations["sidecar.istio.io/inject"]; got != "false" {
			t.Errorf("%s: sidecar.istio.io/inject %q: an Istio sidecar keeps the pod from completing", rt, got)
		}
		if len(r.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", rt, len(r.Template.Spec.Containers))
		}
		c := r.Template.Spec.Containers[0]
		checkRank(t, string(rt), ex, c.Image, c.Command, c.Args, c.VolumeMounts, r.Template.Spec.Volumes)
	}
	if world != 2 || job.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeMaster] == nil {
		t.Errorf("world size %d (with a Master: %v), want 2 with rank 0 the Master", world, job.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeMaster] != nil)
	}
	if len(job.OwnerReferences) != 1 || job.OwnerReferences[0].Kind != "Pod" {
		t.Errorf("owner references %v: the launching pod must own the job", job.OwnerReferences)
	}
}

// TestWorkersTrainJob: the compiled pipeline's TrainJob decodes strictly
// into Kubeflow Trainer's type and runs two one-process nodes of the
// pipeline's finetune image with the claim mounted in the trainer
// container.
func TestWorkersTrainJob(t *testing.T) {
	data, err := os.ReadFile(trainJobGolden)
	if err != nil {
		t.Fatal(err)
	}
	job, err := DecodeTrainJob(data)
	if err != nil {
		t.Fatal(err)
	}
	tr := job.Spec.Trainer
	if *tr.NumNodes != 2 || tr.NumProcPerNode == nil || tr.NumProcPerNode.String() != "1" {
		t.Errorf("numNodes %d, numProcPerNode %v: want 2 nodes of one rank", *tr.NumNodes, tr.NumProcPerNode)
	}
	if len(job.Spec.PodSpecOverrides) != 1 || len(job.Spec.PodSpecOverrides[0].Containers) != 1 {
		t.Fatalf("podSpecOverrides %+v: want one, with the trainer container's mounts", job.Spec.PodSpecOverrides)
	}
	o := job.Spec.PodSpecOverrides[0]
	checkRank(t, "trainer", finetuneExecutor(t), *tr.Image, tr.Command, tr.Args, o.Containers[0].VolumeMounts, o.Volumes)
}

// TestWorkersTrainJobPodsSkipIstio: the compiled pipeline's TrainJob runs
// on the TrainingRuntime manifests/trainjob-runtime ships, and the JobSet
// Kubeflow Trainer's own code makes of the two (its webhook's checks, then
// its runtime plugins) has trainer pods without an Istio sidecar: one pod
// per rank, of the pipeline's image, with the claim mounted. A TrainJob
// cannot set its pods' annotations itself (trainer v2.0.0), so without the
// runtime an injected sidecar would keep each rank's pod from completing.
func TestWorkersTrainJobPodsSkipIstio(t *testing.T) {
	data, err := os.ReadFile(trainJobGolden)
	if err != nil {
		t.Fatal(err)
	}
	job, err := DecodeTrainJob(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderBundle(repoPath("manifests", "trainjob-runtime"))
	if err != nil {
		t.Fatal(err)
	}
	rt := b.TrainingRuntimes[job.Spec.RuntimeRef.Name]
	if rt == nil {
		t.Fatalf("the TrainJob's runtime %s is not in manifests/trainjob-runtime (%v)", job.Spec.RuntimeRef.Name, b.Keys())
	}
	js, err := TrainJobSet(job, rt)
	if err != nil {
		t.Fatal(err)
	}
	var node *jobsetv1alpha2.ReplicatedJob
	for i, rj := range js.Spec.ReplicatedJobs {
		if rj.Name == "node" {
			node = &js.Spec.ReplicatedJobs[i]
		}
	}
	if node == nil {
		t.Fatalf("the JobSet has no replicated job node: %+v", js.Spec.ReplicatedJobs)
	}
	pod := node.Template.Spec.Template
	if got := pod.Annotations["sidecar.istio.io/inject"]; got != "false" {
		t.Errorf("trainer pods' sidecar.istio.io/inject %q (annotations %v): an Istio sidecar keeps the pod from completing", got, pod.Annotations)
	}
	if p := node.Template.Spec.Parallelism; p == nil || *p != *job.Spec.Trainer.NumNodes {
		t.Errorf("node job parallelism %v, want one pod per rank (%d)", p, *job.Spec.Trainer.NumNodes)
	}
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "node" {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("trainer pod has no container node: %+v", pod.Spec.Containers)
	}
	checkRank(t, "trainer pod", finetuneExecutor(t), c.Image, c.Command, c.Args, c.VolumeMounts, pod.Spec.Volumes)
}

// TestJobDecodersRefuse: what the API server or the operator would refuse
// fails here too: a misspelt field, a PyTorchJob container the operator
// does not recognise, a TrainJob setting torchrun's reserved variables.
func TestJobDecodersRefuse(t *testing.T) {
	pj, err := os.ReadFile(pytorchJobGolden)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(trainJobGolden)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data   []byte
		decode func([]byte) error
	}{
		"unknown field":       {bytes.Replace(pj, []byte(`"replicas"`), []byte(`"replica"`), 1), func(b []byte) error { _, err := DecodePyTorchJob(b); return err }},
		"container not named": {bytes.ReplaceAll(pj, []byte(`"name": "pytorch"`), []byte(`"name": "main"`)), func(b []byte) error { _, err := DecodePyTorchJob(b); return err }},
		"trainjob unknown":    {bytes.Replace(tj, []byte(`"numNodes"`), []byte(`"nodes"`), 1), func(b []byte) error { _, err := DecodeTrainJob(b); return err }},
		"trainjob PET env":    {bytes.Replace(tj, []byte(`"name": "HF_TOKEN"`), []byte(`"name": "PET_NNODES"`), 1), func(b []byte) error { _, err := DecodeTrainJob(b); return err }},
	} {
		if bytes.Equal(c.data, pj) || bytes.Equal(c.data, tj) {
			t.Fatalf("%s: the golden file no longer has the text this case edits", name)
		}
		if err := c.decode(c.data); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// launcherCalls are the API calls internal/distjob's Client makes: create,
// get, list (by claim label) and delete of the job, get of the launcher's
// own pod.
var launcherCalls = []struct{ group, resource, verb string }{
	{"kubeflow.org", "pytorchjobs", "create"}, {"kubeflow.org", "pytorchjobs", "get"}, {"kubeflow.org", "pytorchjobs", "list"}, {"kubeflow.org", "pytorchjobs", "delete"},
	{"trainer.kubeflow.org", "trainjobs", "create"}, {"trainer.kubeflow.org", "trainjobs", "get"}, {"trainer.kubeflow.org", "trainjobs", "list"}, {"trainer.kubeflow.org", "trainjobs", "delete"},
	{"", "pods", "get"},
}

// TestPipelineRunnerRole: manifests/pipeline-runner grants the service
// accounts KFP runs pipelines as (default-editor in a profile namespace,
// pipeline-runner in standalone KFP) each call the launcher makes, in the
// Role's own namespace, and no verb beyond them.
func TestPipelineRunnerRole(t *testing.T) {
	b, err := RenderBundle(repoPath("manifests", "pipeline-runner"))
	if err != nil {
		t.Fatal(err)
	}
	role, rb := b.Roles["kfllm-finetune-workers"], b.RoleBindings["kfllm-finetune-workers"]
	if role == nil || rb == nil {
		t.Fatalf("manifests/pipeline-runner: Role or RoleBinding kfllm-finetune-workers missing: %v", b.Keys())
	}
	allows := func(group, resource, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, c := range launcherCalls {
		if !allows(c.group, c.resource, c.verb) {
			t.Errorf("the Role does not allow %s %s.%s", c.verb, c.resource, c.group)
		}
	}
	granted := 0
	for _, r := range role.Rules {
		granted += len(r.APIGroups) * len(r.Resources) * len(r.Verbs)
	}
	if granted != len(launcherCalls) {
		t.Errorf("the Role grants %d (group, resource, verb) triples, the launcher needs %d", granted, len(launcherCalls))
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name {
		t.Errorf("RoleBinding refers to %s %s", rb.RoleRef.Kind, rb.RoleRef.Name)
	}
	want := map[string]bool{"default-editor": false, "pipeline-runner": false}
	for _, s := range rb.Subjects {
		if _, ok := want[s.Name]; ok && s.Kind == "ServiceAccount" && s.Namespace == role.Namespace {
			want[s.Name] = true
		}
	}
	for sa, ok := range want {
		if !ok {
			t.Errorf("service account %s of namespace %s is not bound (subjects %+v)", sa, role.Namespace, rb.Subjects)
		}
	}
}
