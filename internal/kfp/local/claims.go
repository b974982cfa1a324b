package local

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// Claims: a PersistentVolumeClaim is a directory WORKDIR/.claims/NAME. A
// CreatePVC task makes one (named RUN-ID plus its pvc_name_suffix, or
// pvc_name), a DeletePVC task removes it, and a task that mounts a claim at
// PATH (pvcMount) sees PATH in its arguments replaced by the directory. A
// claim named by a pipeline parameter (an existing claim on the cluster)
// outlives the run, so a later run resumes from what it holds.

var claimNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

func (r *runner) claimDir(name string) (string, error) {
	if !claimNameRE.MatchString(name) {
		return "", fmt.Errorf("claim name %q is not a Kubernetes object name", name)
	}
	return filepath.Join(r.o.WorkDir, ".claims", name), nil
}

// claimTask runs a CreatePVC or DeletePVC task, returning its output parameters.
func (r *runner) claimTask(t *task, params map[string]*structpb.Value) (map[string]*structpb.Value, error) {
	switch t.claimOp() {
	case "create":
		name, suffix := params["pvc_name"].GetStringValue(), params["pvc_name_suffix"].GetStringValue()
		switch {
		case name != "" && suffix != "":
			return nil, fmt.Errorf("create claim: at most one of pvc_name and pvc_name_suffix can be non-empty")
		case suffix != "":
			name = strings.ToLower(r.o.RunID) + suffix
		case name == "":
			name = strings.ToLower(r.o.RunID) + "-claim"
		}
		dir, err := r.claimDir(name)
		if err != nil {
			return nil, fmt.Errorf("create claim: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create claim: %w", err)
		}
		fmt.Fprintf(r.o.Out, "[%s] claim %s: %s\n", t.name, name, dir)
		return map[string]*structpb.Value{"name": structpb.NewStringValue(name)}, nil
	case "delete":
		name := params["pvc_name"].GetStringValue()
		dir, err := r.claimDir(name)
		if err != nil {
			return nil, fmt.Errorf("delete claim: %w", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("delete claim: %w", err)
		}
		fmt.Fprintf(r.o.Out, "[%s] claim %s deleted\n", t.name, name)
		return map[string]*structpb.Value{}, nil
	}
	return nil, fmt.Errorf("task %s: not a claim task", t.name)
}

// mounts resolves the task's pvcMounts to local directories, by mount path.
func (r *runner) mounts(t *task, outParams map[string]map[string]*structpb.Value) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range t.k8s.GetPvcMount() {
		var name string
		switch {
		case m.GetConstant() != "":
			name = m.GetConstant()
		case m.GetComponentInputParameter() != "":
			name = r.pl.params[m.GetComponentInputParameter()].GetStringValue()
		case m.GetTaskOutputParameter() != nil:
			top := m.GetTaskOutputParameter()
			name = outParams[top.ProducerTask][top.OutputParameterKey].GetStringValue()
		}
		if name == "" {
			return nil, fmt.Errorf("claim mounted at %s has no name", m.MountPath)
		}
		dir, err := r.claimDir(name)
		if err != nil {
			return nil, fmt.Errorf("claim mounted at %s: %w", m.MountPath, err)
		}
		// A claim named by a parameter is one that exists on the cluster;
		// here its directory is made on first use.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		out[filepath.Clean(m.MountPath)] = abs
	}
	return out, nil
}

// remount rewrites arguments that are, or lie under, a mount path.
func remount(argv []string, mounts map[string]string) []string {
	for i, a := range argv {
		for path, dir := range mounts {
			if a == path {
				argv[i] = dir
			} else if rest, ok := strings.CutPrefix(a, path+"/"); ok {
				argv[i] = filepath.Join(dir, rest)
			}
		}
	}
	return argv
}
