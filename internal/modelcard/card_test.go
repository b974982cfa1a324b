package modelcard

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// frontMatter parses the YAML between the leading "---" lines, as the Hub does.
func frontMatter(t *testing.T, card string) map[string]any {
	t.Helper()
	rest, ok := strings.CutPrefix(card, "---\n")
	if !ok {
		t.Fatalf("card does not open with front matter:\n%s", card)
	}
	fm, _, ok := strings.Cut(rest, "\n---\n")
	if !ok {
		t.Fatalf("front matter not closed:\n%s", card)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(fm), &m); err != nil {
		t.Fatalf("front matter is not YAML: %v\n%s", err, fm)
	}
	return m
}

func TestRenderFull(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, TrainingArgsFile), `{"base_model":"Qwen/Qwen2.5-0.5B","learning_rate":0.0002,"epochs":3,"dataset":"hf://datasets/rajpurkar/squad","note":"a|b"}`)
	writeFile(t, filepath.Join(dir, MetricsFile), `{"eval_loss":1.25,"train_loss":1.5,"history":[1,2,3,4,5,6,7,8,9,10]}`)
	writeFile(t, filepath.Join(dir, CurvesFile), `<svg/>`)
	card, err := Render(dir, Info{ModelID: "me/squad-qwen", License: "apache-2.0", Tags: []string{"squad", "kfllm"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(card)
	fm := frontMatter(t, s)
	want := map[string]any{
		"license":      "apache-2.0",
		"base_model":   "Qwen/Qwen2.5-0.5B",
		"datasets":     []any{"rajpurkar/squad"},
		"library_name": "transformers",
		"pipeline_tag": "text-generation",
		"tags":         []any{"kfllm", "text-generation", "fine-tuned", "squad", "base_model:finetune:Qwen/Qwen2.5-0.5B"},
	}
	if !reflect.DeepEqual(fm, want) {
		t.Errorf("front matter\n got %#v\nwant %#v", fm, want)
	}
	for _, line := range []string{
		"# me/squad-qwen",
		"| eval_loss | 1.25 |",
		"| learning_rate | 0.0002 |",
		"| epochs | 3 |",
		"| history | (10 values) |",
		`| note | a\|b |`,
		"![Training curves](training_curves.svg)",
		"[rajpurkar/squad](https://huggingface.co/datasets/rajpurkar/squad)",
		`AutoModelForCausalLM.from_pretrained("me/squad-qwen")`,
		Marker,
	} {
		if !strings.Contains(s, line+"\n") && !strings.Contains(s, line) {
			t.Errorf("card lacks %q:\n%s", line, s)
		}
	}
}

func TestRenderMissingFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "adapter_config.json"), `{"base_model_name_or_path":"gpt2","r":8}`)
	card, err := Render(dir, Info{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(card)
	fm := frontMatter(t, s)
	if fm["base_model"] != "gpt2" || fm["library_name"] != "peft" || fm["license"] != nil || fm["datasets"] != nil {
		t.Errorf("front matter %v", fm)
	}
	if strings.Contains(s, "## Results") || strings.Contains(s, "## Training hyperparameters") || strings.Contains(s, "## Training curves") {
		t.Errorf("sections for missing files:\n%s", s)
	}
}

// TestRenderAdapter: the card of a PEFT adapter directory (what finetune
// writes with LoRA unmerged) is a PEFT card as the Hub expects one:
// library_name peft, base_model the base it needs, the adapter relation in
// the tags, and a usage snippet that loads the base and the adapter.
func TestRenderAdapter(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, AdapterConfigFile), `{"base_model_name_or_path":"HuggingFaceTB/SmolLM2-135M","r":16,"peft_type":"LORA"}`)
	writeFile(t, filepath.Join(dir, TrainingArgsFile), `{"base_model":"HuggingFaceTB/SmolLM2-135M","lora_r":16}`)
	card, err := Render(dir, Info{ModelID: "me/squad-lora"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(card)
	fm := frontMatter(t, s)
	if fm["library_name"] != "peft" || fm["base_model"] != "HuggingFaceTB/SmolLM2-135M" {
		t.Errorf("front matter %v: want library_name peft, base_model HuggingFaceTB/SmolLM2-135M", fm)
	}
	tags := fm["tags"].([]any)
	if !slices.Contains(tags, any("base_model:adapter:HuggingFaceTB/SmolLM2-135M")) || slices.Contains(tags, any("base_model:finetune:HuggingFaceTB/SmolLM2-135M")) {
		t.Errorf("tags %v: want the adapter relation to the base", tags)
	}
	for _, line := range []string{
		"needs its base model [HuggingFaceTB/SmolLM2-135M](https://huggingface.co/HuggingFaceTB/SmolLM2-135M)",
		`AutoPeftModelForCausalLM.from_pretrained("me/squad-lora")`,
		"serving --model-name NAME --model-id me/squad-lora",
	} {
		if !strings.Contains(s, line) {
			t.Errorf("card lacks %q:\n%s", line, s)
		}
	}
	if strings.Contains(s, "AutoModelForCausalLM.from_pretrained") {
		t.Errorf("an adapter's card loads it as a full model:\n%s", s)
	}
}

// An adapter trained on a local base (the demo's) says which directory
// that was, in the text: base_model would not mean anything on the Hub.
func TestRenderAdapterOnLocalBase(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, AdapterConfigFile), `{"base_model_name_or_path":"/srv/models/base","r":8}`)
	card, err := Render(dir, Info{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := frontMatter(t, string(card))["base_model"]; ok {
		t.Errorf("a local path became base_model:\n%s", card)
	}
	if !strings.Contains(string(card), "needs its base model, which was the local directory `/srv/models/base`") {
		t.Errorf("the card does not say which base the adapter needs:\n%s", card)
	}
}

func TestRenderLocalBaseModelOmitted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, TrainingArgsFile), `{"base_model":"/tmp/models/base"}`)
	card, err := Render(dir, Info{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := frontMatter(t, string(card))["base_model"]; ok {
		t.Errorf("a local path became base_model:\n%s", card)
	}
}

func TestRenderBadJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, MetricsFile), `{"eval_loss":`)
	if _, err := Render(dir, Info{}); err == nil || !strings.Contains(err.Error(), MetricsFile) {
		t.Fatalf("err = %v, want one naming %s", err, MetricsFile)
	}
}

func TestForDirKeepsHandWrittenCard(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ReadmeFile)
	writeFile(t, p, "# my own card\n")
	card, err := ForDir(dir, Info{BaseModel: "gpt2"})
	if err != nil || card != nil {
		t.Fatalf("ForDir beside a hand-written card: %q, %v; want nil, nil", card, err)
	}
	// A generated card is rendered afresh, from the directory's files.
	writeFile(t, p, "old\n"+Marker+"\n")
	writeFile(t, filepath.Join(dir, MetricsFile), `{"eval_loss":0.5}`)
	card, err = ForDir(dir, Info{BaseModel: "gpt2"})
	if err != nil || !strings.Contains(string(card), "| eval_loss | 0.5 |") || strings.HasPrefix(string(card), "old") {
		t.Errorf("ForDir beside a generated card: %v\n%s", err, card)
	}
	if b, _ := os.ReadFile(p); string(b) != "old\n"+Marker+"\n" {
		t.Errorf("ForDir wrote into the directory: %q", b)
	}
}
