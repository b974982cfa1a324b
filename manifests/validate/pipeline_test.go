package validate

import (
	"regexp"
	"strings"
	"testing"
)

// TestPipelineRunsTheImagesEntrypoints: every executor of the compiled
// pipeline (internal/kfp/testdata/kfllm-finetune.yaml, which the pipeline
// package's own test keeps equal to `pipeline compile` output) runs
// ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG} with command[0] equal to that
// image's ENTRYPOINT (Entrypoint: /usr/local/bin/<name>, as make images
// builds it); kfp-kubernetes' CreatePVC and DeletePVC (argostub/* images)
// are run by the KFP driver itself.
func TestPipelineRunsTheImagesEntrypoints(t *testing.T) {
	eps := entrypoints(t)
	exs, err := PipelineExecutors(repoPath("internal", "kfp", "testdata", "kfllm-finetune.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	image := regexp.MustCompile(`^[a-z0-9.:/-]+/kfllm-([a-z]+):[A-Za-z0-9_.-]+$`)
	seen := map[string]bool{}
	for _, ex := range exs {
		if strings.HasPrefix(ex.Image, "argostub/") && len(ex.Command) == 0 {
			continue
		}
		m := image.FindStringSubmatch(ex.Image)
		if m == nil {
			t.Errorf("executor %s: image %q is not REGISTRY/kfllm-<name>:TAG", ex.Name, ex.Image)
			continue
		}
		name := m[1]
		seen[name] = true
		ep, ok := eps[name]
		if !ok {
			t.Errorf("executor %s: image %s is not one of the images make images builds", ex.Name, ex.Image)
			continue
		}
		if len(ex.Command) == 0 || ex.Command[0] != ep {
			t.Errorf("executor %s: command %q, but the kfllm-%s image's ENTRYPOINT is %q", ex.Name, ex.Command, name, ep)
		}
	}
	for _, want := range []string{"fetch", "tokenize", "finetune", "upload"} {
		if !seen[want] {
			t.Errorf("the compiled pipeline has no %s executor (executors: %v)", want, names(exs))
		}
	}
}

func names(exs []Executor) string {
	var s []string
	for _, e := range exs {
		s = append(s, e.Name)
	}
	return strings.Join(s, ", ")
}
