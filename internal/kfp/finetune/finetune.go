// Package finetune is kfllm's fine-tuning pipeline, defined with package kfp:
// fetch -> tokenize -> finetune -> upload, the artifacts output_dataset and
// output_model_dir passed along (docs/design.md §1, §5), HF_TOKEN from the
// hf-secret Kubernetes secret for the tasks that talk to Hugging Face.
package finetune

import (
	"fmt"

	"github.com/kfllm/kfllm/internal/kfp"
)

// Name is the pipeline's name, also its name on the KFP server.
const Name = "kfllm-finetune"

// Images says where the component images are: REGISTRY/kfllm-NAME:TAG.
type Images struct {
	Registry string // default DefaultRegistry
	Tag      string // default DefaultTag
}

// Defaults of [Images].
const (
	DefaultRegistry = "ghcr.io/kfllm"
	DefaultTag      = "dev"
)

// Image returns the image of component name.
func (im Images) Image(name string) string {
	reg, tag := im.Registry, im.Tag
	if reg == "" {
		reg = DefaultRegistry
	}
	if tag == "" {
		tag = DefaultTag
	}
	return fmt.Sprintf("%s/kfllm-%s:%s", reg, name, tag)
}

// BinDir is where each image keeps its binary: the command is BinDir/NAME.
const BinDir = "/usr/local/bin/"

// HF secret: the Kubernetes secret and key holding the Hugging Face token.
const (
	HFSecret    = "hf-secret"
	HFSecretKey = "HF_TOKEN"
)

// Pipeline returns the fine-tuning pipeline with its images from im.
func Pipeline(im Images) *kfp.Pipeline {
	p := kfp.NewPipeline(Name, "Fetch a dataset, tokenize it, fine-tune a causal LM with LoRA, upload it to Hugging Face.")
	source := p.StringParam("source", "hf://datasets/rajpurkar/squad")
	split := p.StringParam("split", "train")
	task := p.StringParam("task", "qa")
	baseModel := p.StringParam("base_model", "HuggingFaceTB/SmolLM2-135M")
	hfRepo := p.StringParam("hf_repo", "")
	maxLength := p.IntParam("max_length", 512)
	epochs := p.IntParam("epochs", 1)
	learningRate := p.FloatParam("learning_rate", 2e-4)
	batchSize := p.IntParam("batch_size", 8)
	loraR := p.IntParam("lora_r", 8)
	loraAlpha := p.IntParam("lora_alpha", 16)
	maxSteps := p.IntParam("max_steps", 0)
	warmupSteps := p.IntParam("warmup_steps", 0)
	seed := p.IntParam("seed", 42)
	qaEval := p.StringParam("qa_eval", "")

	fetch := p.Task(component(im, "fetch").
		Param("--source", "source", kfp.String).
		Param("--split", "split", kfp.String).
		Param("--task", "task", kfp.String).
		Output("--output-dataset", "output_dataset", kfp.Dataset),
		kfp.Inputs{"source": source, "split": split, "task": task}).
		WithResources(kfp.Resources{CPURequest: "1", CPULimit: "2", MemoryRequest: "2G", MemoryLimit: "4G"}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN")

	tokenize := p.Task(component(im, "tokenize").
		Input("--input-dataset", "input_dataset", kfp.Dataset).
		Param("--tokenizer", "tokenizer", kfp.String).
		Param("--max-length", "max_length", kfp.Int).
		Output("--output-dataset", "output_dataset", kfp.Dataset),
		kfp.Inputs{"input_dataset": fetch.Output("output_dataset"), "tokenizer": baseModel, "max_length": maxLength}).
		WithResources(kfp.Resources{CPURequest: "2", CPULimit: "4", MemoryRequest: "4G", MemoryLimit: "8G"})

	train := p.Task(component(im, "finetune").
		Input("--input-dataset", "input_dataset", kfp.Dataset).
		Param("--base-model", "base_model", kfp.String).
		Param("--epochs", "epochs", kfp.Int).
		Param("--learning-rate", "learning_rate", kfp.Float).
		Param("--batch-size", "batch_size", kfp.Int).
		Param("--lora-r", "lora_r", kfp.Int).
		Param("--lora-alpha", "lora_alpha", kfp.Int).
		Param("--max-steps", "max_steps", kfp.Int).
		Param("--warmup-steps", "warmup_steps", kfp.Int).
		Param("--seed", "seed", kfp.Int).
		Param("--qa-eval", "qa_eval", kfp.String).
		Output("--output-model-dir", "output_model_dir", kfp.Model).
		Output("--metrics-output", "metrics", kfp.Metrics).
		Output("--html-output", "report", kfp.HTML).
		Output("--markdown-output", "eval_table", kfp.Markdown),
		kfp.Inputs{
			"input_dataset": tokenize.Output("output_dataset"),
			"base_model":    baseModel,
			"epochs":        epochs,
			"learning_rate": learningRate,
			"batch_size":    batchSize,
			"lora_r":        loraR,
			"lora_alpha":    loraAlpha,
			"max_steps":     maxSteps,
			"warmup_steps":  warmupSteps,
			"seed":          seed,
			"qa_eval":       qaEval,
		}).
		WithResources(kfp.Resources{
			CPURequest: "4", CPULimit: "8", MemoryRequest: "16G", MemoryLimit: "32G",
			Accelerator: "nvidia.com/gpu", AcceleratorCount: 1,
		}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN")

	p.Task(component(im, "upload").
		Input("--model-dir", "model_dir", kfp.Model).
		Param("--repo", "hf_repo", kfp.String),
		kfp.Inputs{"model_dir": train.Output("output_model_dir"), "hf_repo": hfRepo}).
		WithResources(kfp.Resources{CPURequest: "1", CPULimit: "2", MemoryRequest: "2G", MemoryLimit: "4G"}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN").
		NoCache()
	return p
}

func component(im Images, name string) *kfp.Component {
	return kfp.NewComponent(name, im.Image(name), BinDir+name)
}

// YAML compiles the pipeline with images from im to the YAML KFP reads.
func YAML(im Images) ([]byte, error) {
	c, err := kfp.Compile(Pipeline(im))
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", Name, err)
	}
	return kfp.Marshal(c)
}
