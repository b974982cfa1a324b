package distjob

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Flag is one flag of finetune as the launching task got it, by name
// without dashes ("input-dataset") and value as text.
type Flag struct{ Name, Value string }

// The finetune flags [Plan] moves to the staging directory: the inputs it
// copies there first (the base model and QA eval file only when they are
// local paths, not Hub references) and the outputs it copies back.
var (
	inputFlags  = []string{"input-dataset", "base-model", "qa-eval"}
	outputFlags = []string{"output-model-dir", "metrics-output", "html-output", "markdown-output"}
)

// StagingDir is the directory under the shared claim's mount where a job's
// inputs and outputs are staged, one subdirectory per job; the checkpoint
// directory beside it is shared by every job of the task, so a retried
// task's job resumes.
const StagingDir = ".kfllm-workers"

// Move is one copy between the task's own paths and the staging directory.
type Move struct{ From, To string }

// Plan is a job to run and the copies around it.
type Plan struct {
	Spec    Spec
	Dir     string // the job's staging directory
	Inputs  []Move // task path -> staging, before the job
	Outputs []Move // staging -> task path, after it succeeded
}

// JobName names the job of the launching pod (its UID, or its name):
// "kfllm-ft-" and 12 hex digits of their SHA-256.
func JobName(podUID string) string {
	h := sha256.Sum256([]byte(podUID))
	return "kfllm-ft-" + hex.EncodeToString(h[:6])
}

// MakePlan returns the plan that runs flags as a job shaped by base (its
// Args are replaced): input and output paths move to a staging directory
// under base.MountPath, everything else is passed as given, and
// --checkpoint-dir must lie under the mount, where every rank sees rank 0's
// checkpoints.
func MakePlan(base Spec, flags []Flag) (Plan, error) {
	p := Plan{Spec: base}
	if base.MountPath == "" || !filepath.IsAbs(base.MountPath) {
		return Plan{}, fmt.Errorf("plan job: shared claim mount %q is not an absolute path", base.MountPath)
	}
	p.Dir = filepath.Join(base.MountPath, StagingDir, base.Name)
	seen := map[string]bool{}
	var args []string
	for _, f := range flags {
		if seen[f.Name] {
			return Plan{}, fmt.Errorf("plan job: flag --%s given twice", f.Name)
		}
		seen[f.Name] = true
		v := f.Value
		switch {
		case f.Name == "checkpoint-dir":
			if !under(v, base.MountPath) {
				return Plan{}, fmt.Errorf("plan job: --checkpoint-dir %s is not on the shared claim mounted at %s", v, base.MountPath)
			}
		case contains(inputFlags, f.Name) && v != "":
			if f.Name != "input-dataset" && !local(v) {
				break // a Hub reference: each rank downloads it
			}
			staged := filepath.Join(p.Dir, "in", f.Name)
			p.Inputs = append(p.Inputs, Move{From: v, To: staged})
			v = staged
		case contains(outputFlags, f.Name) && v != "":
			staged := filepath.Join(p.Dir, "out", f.Name)
			p.Outputs = append(p.Outputs, Move{From: staged, To: v})
			v = staged
		}
		args = append(args, "--"+f.Name+"="+v)
	}
	for _, need := range []string{"input-dataset", "output-model-dir", "checkpoint-dir"} {
		if !seen[need] {
			return Plan{}, fmt.Errorf("plan job: --%s is required with workers > 1", need)
		}
	}
	p.Spec.Args = args
	if err := p.Spec.check(); err != nil {
		return Plan{}, err
	}
	return p, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	rel, err := filepath.Rel(dir, filepath.Clean(p))
	return err == nil && filepath.IsAbs(p) && rel != ".." && !strings.HasPrefix(rel, "../")
}

// local reports whether v names something on this file system (a base
// model directory, a QA file) rather than a Hub reference OWNER/NAME.
func local(v string) bool {
	_, err := os.Stat(v)
	return err == nil
}
