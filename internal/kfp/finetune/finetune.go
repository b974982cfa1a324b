// Package finetune is kfllm's fine-tuning pipeline, defined with package kfp:
// fetch -> tokenize -> finetune -> upload, the artifacts output_dataset and
// output_model_dir passed along (docs/design.md §1, §5), HF_TOKEN from the
// hf-secret Kubernetes secret for every task that reads or writes the Hub.
//
// finetune checkpoints to a PersistentVolumeClaim mounted at [CheckpointDir]:
// by default the pipeline creates the claim (kfp-kubernetes' CreatePVC) and
// deletes it after upload; with [Options.CheckpointClaim] it mounts an
// existing claim named by the pipeline parameter checkpoint_pvc instead. A
// retried finetune (fetch, finetune and upload have KFP retry policies)
// resumes from the last checkpoint. upload's commit is the pipeline's output
// commit_sha.
//
// fetch, tokenize and finetune take the executor input (--executor-input,
// KFP's {{$}}) and write their output artifacts' metadata (finetune's scalar
// metrics) as the executor output at its outputs.outputFile, where the
// launcher of every KFP 2.x reads it; upload writes commit_sha and repo_url
// to the files the output_file placeholders name (package kfp/executor).
package finetune

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kfllm/kfllm/internal/distjob"
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

// CheckpointDir is where finetune's checkpoint claim is mounted.
const CheckpointDir = "/kfllm/checkpoints"

// Options shape the compiled pipeline.
type Options struct {
	Images
	// CheckpointClaim, when set, is the default of pipeline parameter
	// checkpoint_pvc, an existing claim that finetune mounts; the pipeline
	// then creates and deletes no claim.
	CheckpointClaim string
	// GPU is finetune's accelerator and where its pod may run.
	GPU GPU
}

// GPU is finetune's accelerator request and scheduling: the defaults of
// pipeline parameters accelerator, node_selector and tolerations, which the
// pipeline passes as the KFP SDK (set_accelerator_type on a parameter) and
// kfp-kubernetes (add_node_selector_json, add_toleration_json) do, so a run
// may choose its GPU pool.
type GPU struct {
	// Accelerator is the resource name (default nvidia.com/gpu); Count
	// defaults to 1.
	Accelerator string
	Count       int
	// NodeSelector and Tolerations place the pod on the GPU node pool.
	NodeSelector map[string]string
	Tolerations  []kfp.Toleration
}

// Scheduling parameters: finetune's accelerator resource name, node
// selector (a JSON object of label -> value) and tolerations (a JSON list
// of Kubernetes tolerations: key, operator, value, effect,
// tolerationSeconds).
const (
	AcceleratorParam  = "accelerator"
	NodeSelectorParam = "node_selector"
	TolerationsParam  = "tolerations"
)

// nodeSelectorDefault is the node_selector parameter's default.
func (g GPU) nodeSelectorDefault() map[string]any {
	m := make(map[string]any, len(g.NodeSelector))
	for k, v := range g.NodeSelector {
		m[k] = v
	}
	return m
}

// tolerationsDefault is the tolerations parameter's default, each
// toleration in Kubernetes' JSON form (empty fields left out).
func (g GPU) tolerationsDefault() []any {
	l := make([]any, 0, len(g.Tolerations))
	for _, t := range g.Tolerations {
		m := map[string]any{}
		for k, v := range map[string]string{"key": t.Key, "operator": t.Operator, "value": t.Value, "effect": t.Effect} {
			if v != "" {
				m[k] = v
			}
		}
		if t.Seconds != nil {
			m["tolerationSeconds"] = float64(*t.Seconds)
		}
		l = append(l, m)
	}
	return l
}

// Data-parallel parameters: workers, the number of ranks (1: finetune
// trains in its own pod; more: it launches them as a job of the
// distributed_runtime, pytorchjob or trainjob, on the checkpoint claim,
// which must then be ReadWriteMany: checkpoint_access_modes, or an
// existing claim as checkpoint_pvc). See internal/distjob.
const (
	WorkersParam     = "workers"
	RuntimeParam     = "distributed_runtime"
	AccessModesParam = "checkpoint_access_modes"
)

// DefaultAccelerator is finetune's accelerator resource unless set.
const DefaultAccelerator = "nvidia.com/gpu"

// retry is the retry policy of the tasks that talk to the network or may
// lose their node: up to 3 more attempts, 10 s, 20 s, 40 s apart.
var retry = kfp.RetryPolicy{MaxRetries: 3, Backoff: 10 * time.Second, Factor: 2, MaxBackoff: 5 * time.Minute}

// Pipeline returns the fine-tuning pipeline with its images from im and
// the default options otherwise.
func Pipeline(im Images) *kfp.Pipeline { return New(Options{Images: im}) }

// New returns the fine-tuning pipeline shaped by o.
func New(o Options) *kfp.Pipeline {
	im := o.Images
	p := kfp.NewPipeline(Name, "Fetch a dataset, tokenize it, fine-tune a causal LM with LoRA, upload it to Hugging Face.")
	source := p.StringParam("source", "hf://datasets/rajpurkar/squad")
	split := p.StringParam("split", "train")
	task := p.StringParam("task", "qa")
	baseModel := p.StringParam("base_model", "HuggingFaceTB/SmolLM2-135M")
	hfRepo := p.StringParam("hf_repo", "")
	maxLength := p.IntParam("max_length", 512)
	epochs := p.IntParam("epochs", 1)
	learningRate := p.FloatParam("learning_rate", 1e-3)
	batchSize := p.IntParam("batch_size", 8)
	loraR := p.IntParam("lora_r", 16)
	loraAlpha := p.IntParam("lora_alpha", 32)
	loraTargets := p.StringParam("lora_target_modules", "all-linear")
	mergeLoRA := p.BoolParam("merge_lora", false)
	maxSteps := p.IntParam("max_steps", 0)
	warmupSteps := p.IntParam("warmup_steps", 0)
	seed := p.IntParam("seed", 42)
	qaEval := p.StringParam("qa_eval", "")
	saveSteps := p.IntParam("save_steps", 100)
	accelerator := p.StringParam(AcceleratorParam, or(o.GPU.Accelerator, DefaultAccelerator))
	nodeSelector := p.StructParam(NodeSelectorParam, o.GPU.nodeSelectorDefault())
	tolerations := p.ListParam(TolerationsParam, o.GPU.tolerationsDefault())
	workers := p.IntParam(WorkersParam, 1)
	runtime := p.StringParam(RuntimeParam, string(distjob.PyTorchJob))
	var claim kfp.Value
	var createPVC *kfp.Task
	if o.CheckpointClaim != "" {
		claim = p.StringParam("checkpoint_pvc", o.CheckpointClaim)
	} else {
		size := p.StringParam("checkpoint_size", "20Gi")
		class := p.StringParam("checkpoint_storage_class", "standard")
		// workers > 1 needs ReadWriteMany (and a class that provides it):
		// every rank's pod mounts the claim.
		modes := p.ListParam(AccessModesParam, []any{"ReadWriteOnce"})
		createPVC = p.Task(kfp.CreatePVC(), kfp.Inputs{
			"access_modes":       modes,
			"pvc_name_suffix":    kfp.Const("-kfllm-checkpoints"),
			"size":               size,
			"storage_class_name": class,
		}).NoCache()
		claim = createPVC.Output("name")
	}

	fetch := p.Task(component(im, "fetch").
		Param("--source", "source", kfp.String).
		Param("--split", "split", kfp.String).
		Param("--task", "task", kfp.String).
		Output("--output-dataset", "output_dataset", kfp.Dataset).
		ExecutorInput("--executor-input"),
		kfp.Inputs{"source": source, "split": split, "task": task}).
		WithResources(kfp.Resources{CPURequest: "1", CPULimit: "2", MemoryRequest: "2G", MemoryLimit: "4G"}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN").
		WithRetry(retry)

	tokenize := p.Task(component(im, "tokenize").
		Input("--input-dataset", "input_dataset", kfp.Dataset).
		Param("--tokenizer", "tokenizer", kfp.String).
		Param("--max-length", "max_length", kfp.Int).
		Output("--output-dataset", "output_dataset", kfp.Dataset).
		ExecutorInput("--executor-input"),
		kfp.Inputs{"input_dataset": fetch.Output("output_dataset"), "tokenizer": baseModel, "max_length": maxLength}).
		WithResources(kfp.Resources{CPURequest: "2", CPULimit: "4", MemoryRequest: "4G", MemoryLimit: "8G"}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN") // a Hub tokenizer (base_model) may be gated

	res := kfp.Resources{
		CPURequest: "4", CPULimit: "8", MemoryRequest: "16G", MemoryLimit: "32G",
		AcceleratorCount: max(o.GPU.Count, 1),
	}
	train := p.Task(component(im, "finetune").
		Input("--input-dataset", "input_dataset", kfp.Dataset).
		Param("--base-model", "base_model", kfp.String).
		Param("--epochs", "epochs", kfp.Int).
		Param("--learning-rate", "learning_rate", kfp.Float).
		Param("--batch-size", "batch_size", kfp.Int).
		Param("--lora-r", "lora_r", kfp.Int).
		Param("--lora-alpha", "lora_alpha", kfp.Int).
		Param("--lora-target-modules", "lora_target_modules", kfp.String).
		BoolParam("--merge-lora", "merge_lora").
		Param("--max-steps", "max_steps", kfp.Int).
		Param("--warmup-steps", "warmup_steps", kfp.Int).
		Param("--seed", "seed", kfp.Int).
		Param("--qa-eval", "qa_eval", kfp.String).
		Param("--save-steps", "save_steps", kfp.Int).
		Arg("--checkpoint-dir", CheckpointDir).
		Param("--workers", WorkersParam, kfp.Int).
		Param("--distributed-runtime", RuntimeParam, kfp.String).
		Arg("--worker-image", im.Image("finetune")).
		Arg("--worker-cpu-request", res.CPURequest, "--worker-cpu-limit", res.CPULimit).
		Arg("--worker-memory-request", res.MemoryRequest, "--worker-memory-limit", res.MemoryLimit).
		Param("--worker-accelerator", "worker_accelerator", kfp.String).
		Arg("--worker-accelerator-count", strconv.Itoa(res.AcceleratorCount)).
		Param("--worker-node-selector", "worker_node_selector", kfp.Struct).
		Param("--worker-tolerations", "worker_tolerations", kfp.List).
		Arg("--worker-hf-secret", HFSecret).
		Output("--output-model-dir", "output_model_dir", kfp.Model).
		Output("--metrics-output", "metrics", kfp.Metrics).
		Output("--html-output", "report", kfp.HTML).
		Output("--markdown-output", "eval_table", kfp.Markdown).
		ExecutorInput("--executor-input"),
		kfp.Inputs{
			"input_dataset":        tokenize.Output("output_dataset"),
			"base_model":           baseModel,
			"epochs":               epochs,
			"learning_rate":        learningRate,
			"batch_size":           batchSize,
			"lora_r":               loraR,
			"lora_alpha":           loraAlpha,
			"lora_target_modules":  loraTargets,
			"merge_lora":           mergeLoRA,
			"max_steps":            maxSteps,
			"warmup_steps":         warmupSteps,
			"seed":                 seed,
			"qa_eval":              qaEval,
			"save_steps":           saveSteps,
			WorkersParam:           workers,
			RuntimeParam:           runtime,
			"worker_accelerator":   accelerator,
			"worker_node_selector": nodeSelector,
			"worker_tolerations":   tolerations,
		}).
		WithResources(res).
		WithAcceleratorType(accelerator).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN").
		MountPVC(claim, CheckpointDir).
		WithNodeSelectorJSON(nodeSelector).
		WithTolerationJSON(tolerations).
		WithRetry(retry)

	upload := p.Task(component(im, "upload").
		Input("--model-dir", "model_dir", kfp.Model).
		Param("--repo", "hf_repo", kfp.String).
		OutputParamFile("--commit-sha-output", "commit_sha", kfp.String).
		OutputParamFile("--repo-url-output", "repo_url", kfp.String),
		kfp.Inputs{"model_dir": train.Output("output_model_dir"), "hf_repo": hfRepo}).
		WithResources(kfp.Resources{CPURequest: "1", CPULimit: "2", MemoryRequest: "2G", MemoryLimit: "4G"}).
		WithSecretEnv(HFSecret, HFSecretKey, "HF_TOKEN").
		WithRetry(retry).
		NoCache()
	p.Output("commit_sha", upload.Output("commit_sha"))
	p.Output("repo_url", upload.Output("repo_url"))
	if createPVC != nil {
		p.Task(kfp.DeletePVC(), kfp.Inputs{"pvc_name": claim}).After(upload).NoCache()
	}
	return p
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func component(im Images, name string) *kfp.Component {
	return kfp.NewComponent(name, im.Image(name), BinDir+name)
}

// YAML compiles the pipeline shaped by o to the YAML KFP reads.
func YAML(o Options) ([]byte, error) {
	c, err := kfp.Compile(New(o))
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", Name, err)
	}
	return kfp.Marshal(c)
}
