package local

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kfllm/kfllm/internal/kfp/executor"
)

// Runtime runs a task's container in its image instead of a local binary
// (build/rehearse: runc). With Options.Runtime set, Run gives each task what
// the KFP v2 driver and launcher give its pod (see [Launcher]): the image's
// own command, placeholders resolved to the launcher's paths, the artifacts
// bound at those paths, claims bound at their mount paths, and only the
// environment the task's specs grant.
type Runtime interface {
	// Run runs the container to its end and returns its exit code (-1 and
	// an error when it could not run or did not exit).
	Run(ctx context.Context, c Container) (int, error)
}

// Container is one task's container as its pod would run it.
type Container struct {
	// Task is the DAG task's name; Pod a pod name for it.
	Task, Pod string
	// Image is the executor's image reference.
	Image string
	// Argv is the executor's command then its args, placeholders resolved.
	Argv []string
	// Env is the container's whole environment beyond the image's own.
	Env []string
	// Tmp is a host directory for the container's /tmp, where the launcher
	// reads the executor output and the output parameters.
	Tmp string
	// Scratch are the pod's emptyDir volumes (container paths), mounted
	// before Mounts, which may lie under them.
	Scratch []string
	// Mounts are the artifacts and claims, parents before children.
	Mounts []Mount
	// MemoryLimit is the executor's memory limit in bytes (0: none); the
	// driver gives the pod memoryLimit G.
	MemoryLimit int64
	// Out receives the container's stdout and stderr.
	Out io.Writer
}

// Mount binds a host path into the container.
type Mount struct {
	Host, Container string
	ReadOnly        bool
}

// Launcher is what the KFP v2 backend gives a task's pod, as of KFP 2.14
// (backend/src/v2/driver/driver.go provisionOutputs, component/launcher_v2.go
// LocalPathForURI, compiler/argocompiler/container.go and common.go):
//
//   - the run's pipeline root is PipelineRoot/PIPELINE/RUN-ID; an output
//     artifact's URI is ROOT/TASK/UUID/NAME (one UUID per execution), and
//     its path in the pod is the URI with minio:// replaced by /minio/
//     (gs:// by /gcs/, s3:// by /s3/), from where the launcher uploads the
//     outputs and where it downloads the inputs (a writable copy: what a
//     task changes there reaches no other task);
//   - an output parameter's file is /tmp/kfp/outputs/NAME, the executor
//     output /tmp/kfp_outputs/output_metadata.json ([executor.LauncherPath]),
//     both named in the executor input ({{$}}: outputs.parameters[NAME]
//     .outputFile, outputs.outputFile) and read by the launcher there;
//   - the pod has emptyDirs at /kfp-launcher, /gcs, /s3, /minio, /.local,
//     /.cache and /.config, and the environment KFP_POD_NAME, KFP_POD_UID
//     and the metadata-grpc-configmap's METADATA_GRPC_SERVICE_HOST and _PORT
//     besides the container's env and the platform spec's secrets.
//
// KFP 2.15 moved the executor output under the task root
// (ROOT/TASK/UUID/output_metadata.json, the driver's outputs.outputFile,
// which the launcher reads; kubeflow/pipelines 4471829); see
// ExecutorOutputInTaskRoot.
type Launcher struct {
	// PipelineRoot is the object store root (default KFP's
	// minio://mlpipeline/v2/artifacts).
	PipelineRoot string
	// ExecutorOutputInTaskRoot places the executor output where KFP 2.15
	// and later do, TASKROOT/output_metadata.json instead of
	// /tmp/kfp_outputs/output_metadata.json: the executor input's
	// outputs.outputFile says so and it is read there.
	ExecutorOutputInTaskRoot bool
}

// DefaultPipelineRoot is KFP's default pipeline root (backend/src/v2/config).
const DefaultPipelineRoot = "minio://mlpipeline/v2/artifacts"

// launcherScratch are the pod's emptyDir volumes.
var launcherScratch = []string{"/kfp-launcher", "/gcs", "/s3", "/minio", "/.local", "/.cache", "/.config"}

// outputParamDir is where the driver puts output parameter files.
const outputParamDir = "/tmp/kfp/outputs"

// launcherPath maps an object store URI to the launcher's local path.
func launcherPath(uri string) (string, error) {
	for scheme, dir := range map[string]string{"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"} {
		if rest, ok := strings.CutPrefix(uri, scheme); ok {
			return dir + rest, nil
		}
	}
	return "", fmt.Errorf("pipeline root %s: the launcher maps only gs://, minio:// and s3:// to local paths", uri)
}

// taskRoot is the container path of a task execution's outputs.
func (l Launcher) taskRoot(pipeline, runID, task, salt string) (string, error) {
	root := l.PipelineRoot
	if root == "" {
		root = DefaultPipelineRoot
	}
	uri := fmt.Sprintf("%s/%s", strings.TrimRight(root, "/"), path.Join(pipeline, runID, task, salt))
	return launcherPath(uri)
}

// newUUID is a random (version 4) UUID, as the driver's uuid.NewString.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// podEnv is the environment of a task's pod: the container's env, what the
// KFP compiler adds, and the platform spec's secrets (env checks those).
func (r *runner) podEnv(t *task, pod string) ([]string, error) {
	set := map[string]string{
		"KFP_POD_NAME":               pod,
		"KFP_POD_UID":                newUUID(),
		"METADATA_GRPC_SERVICE_HOST": "metadata-grpc-service",
		"METADATA_GRPC_SERVICE_PORT": "8080",
	}
	for _, e := range t.container.Env {
		set[e.Name] = e.Value
	}
	if err := r.secrets(t, set); err != nil {
		return nil, err
	}
	env := make([]string, 0, len(set))
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, nil
}

// containerLayout is where a task's files are, inside its container and on
// the host, under a Runtime.
type containerLayout struct {
	root     string            // the task root in the container
	tmp      string            // host directory for /tmp
	inputs   map[string]string // input artifact -> container path
	outputs  map[string]string // output artifact -> container path
	params   map[string]string // output parameter -> container file
	hostPar  map[string]string // output parameter -> host file
	execOut  string            // host path of the executor output
	execOutC string            // its container path, the executor input's outputs.outputFile
	mounts   []Mount
}

// layout places a task's inputs and outputs as the launcher does; dir is
// the task's host directory, which becomes its task root.
func (r *runner) layout(t *task, dir string, in *taskInputs, outArtifacts map[string]string) (*containerLayout, error) {
	root, err := r.o.Launcher.taskRoot(r.pl.name, r.o.RunID, t.name, newUUID())
	if err != nil {
		return nil, err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The pod's /tmp and its copies of the inputs lie beside the task
	// directories, out of the task root.
	tmp := filepath.Join(filepath.Dir(absDir), ".pods", t.name, "tmp")
	if err := os.RemoveAll(filepath.Dir(tmp)); err != nil {
		return nil, err
	}
	l := &containerLayout{root: root, tmp: tmp, inputs: map[string]string{}, outputs: map[string]string{},
		params: map[string]string{}, hostPar: map[string]string{}}
	l.execOutC = executor.LauncherPath
	l.execOut = filepath.Join(l.tmp, strings.TrimPrefix(executor.LauncherPath, "/tmp/"))
	if r.o.Launcher.ExecutorOutputInTaskRoot {
		l.execOutC = path.Join(root, "output_metadata.json")
		l.execOut = filepath.Join(absDir, "output_metadata.json")
	}
	l.mounts = append(l.mounts, Mount{Host: absDir, Container: root})
	for name := range outArtifacts {
		l.outputs[name] = path.Join(root, name)
	}
	for name := range t.comp.GetOutputDefinitions().GetParameters() {
		l.params[name] = path.Join(outputParamDir, name)
		l.hostPar[name] = filepath.Join(l.tmp, "kfp", "outputs", name)
	}
	for name, a := range t.spec.GetInputs().GetArtifacts() {
		toa := a.GetTaskOutputArtifact()
		proot, ok := r.roots[toa.GetProducerTask()]
		if !ok {
			return nil, fmt.Errorf("input %s: task %s has not run in a container", name, toa.GetProducerTask())
		}
		// The launcher downloads each input into the pod's /minio emptyDir:
		// a writable copy, whose changes reach no other task.
		cp := filepath.Join(filepath.Dir(tmp), "inputs", name)
		if err := copyTree(in.artifacts[name], cp); err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		l.inputs[name] = path.Join(proot, toa.GetOutputArtifactKey())
		l.mounts = append(l.mounts, Mount{Host: cp, Container: l.inputs[name]})
	}
	return l, nil
}

// sortMounts orders mounts parents first.
func sortMounts(m []Mount) {
	sort.SliceStable(m, func(i, j int) bool {
		return strings.Count(m[i].Container, "/") < strings.Count(m[j].Container, "/")
	})
}

// copyTree copies a file or a directory tree (regular files, directories,
// symbolic links) to dst, which must not exist.
func copyTree(src, dst string) error {
	src, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			return copyFile(p, to)
		}
		return fmt.Errorf("copy %s: not a regular file, directory or link", p)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
