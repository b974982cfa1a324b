package finetune

import (
	"os"
	"slices"
	"testing"

	"github.com/kfllm/kfllm/internal/kfp"
)

// TestFinetuneDeclaresVisualizations checks that the compiled pipeline (and
// the committed golden a KFP server is given) declares the finetune task's
// training report as a system.HTML artifact and its evaluation table as a
// system.Markdown artifact, passed to the container as --html-output and
// --markdown-output: what the KFP UI lists under the task and shows in its
// Visualizations tab.
func TestFinetuneDeclaresVisualizations(t *testing.T) {
	golden, err := os.ReadFile(oursGolden)
	if err != nil {
		t.Fatal(err)
	}
	for name, yaml := range map[string][]byte{"compiled": compiled(t), oursGolden: golden} {
		c, err := kfp.Unmarshal(yaml)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		comp := c.Spec.Components["comp-finetune"]
		if comp == nil {
			t.Fatalf("%s: no comp-finetune", name)
		}
		args := c.Spec.DeploymentSpec.GetFields()["executors"].GetStructValue().GetFields()["exec-finetune"].
			GetStructValue().GetFields()["container"].GetStructValue().GetFields()["args"].GetListValue().GetValues()
		var argv []string
		for _, a := range args {
			argv = append(argv, a.GetStringValue())
		}
		for _, want := range []struct{ output, schema, flag string }{
			{"report", "system.HTML", "--html-output"},
			{"eval_table", "system.Markdown", "--markdown-output"},
			{"metrics", "system.Metrics", "--metrics-output"},
		} {
			a := comp.GetOutputDefinitions().GetArtifacts()[want.output]
			if a == nil {
				t.Errorf("%s: finetune has no output %q", name, want.output)
				continue
			}
			if got := a.GetArtifactType().GetSchemaTitle(); got != want.schema {
				t.Errorf("%s: output %s has schemaTitle %q, want %q", name, want.output, got, want.schema)
			}
			if got := a.GetArtifactType().GetSchemaVersion(); got != "0.0.1" {
				t.Errorf("%s: output %s has schemaVersion %q, want 0.0.1", name, want.output, got)
			}
			i := slices.Index(argv, want.flag)
			if i < 0 || i+1 >= len(argv) || argv[i+1] != "{{$.outputs.artifacts['"+want.output+"'].path}}" {
				t.Errorf("%s: finetune args %q do not pass %s the path of %s", name, argv, want.flag, want.output)
			}
		}
	}
}
