package rehearse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/renameio/v2"
	"github.com/kfllm/kfllm/internal/demo"
	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/gitremote"
	"github.com/kfllm/kfllm/internal/kfp/local"
	"github.com/kfllm/kfllm/internal/synth"
)

// runID names the rehearsal's pipeline run (WORK/runs/rehearse).
const runID = "rehearse"

// Where the pipeline's inputs are bound in its task containers; on a
// cluster they are Hub ids fetched over the network.
const (
	dataDir = "/data"
	baseDir = "/models/base"
	hubDir  = "/hub"
)

// Metrics are the numbers of finetune's metrics.json the rehearsal prints,
// read as make demo reads them.
type Metrics = demo.Metrics

// pipelineRun is what the pipeline step leaves for the serving step.
type pipelineRun struct {
	question synth.Record
	metrics  Metrics
	model    string // the uploaded model, checked out on the host
}

// params are `make demo`'s pipeline parameters (demo.Overrides: the data,
// base model, step count and upload target; the rest is the compiled
// pipeline's own default), with the paths as the task containers see them.
func (o Options) params() map[string]string {
	p := demo.Overrides(dataDir, baseDir, hubDir+"/kfllm-demo.git", o.MaxSteps)
	maps.Copy(p, o.Params)
	return p
}

// pipeline runs the compiled pipeline task by task in the images.
func (o Options) pipeline(ctx context.Context, rc *Runc) (*pipelineRun, error) {
	data := filepath.Join(o.Work, "data")
	train, eval := synth.Generate(synth.Options{Seed: uint64(o.Seed), Train: o.Train, Eval: o.Eval})
	if err := writeJSONL(filepath.Join(data, "train.jsonl"), train); err != nil {
		return nil, err
	}
	if err := writeJSONL(filepath.Join(data, "heldout.jsonl"), eval); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "rehearse: %d training records, %d held-out (seed %d)\n", len(train), len(eval), o.Seed)
	base, err := o.baseModel(ctx)
	if err != nil {
		return nil, err
	}
	hub := filepath.Join(o.Work, "hub")
	runs := filepath.Join(o.Work, "runs")
	for _, d := range []string{hub, runs} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := chownTree(hub, ImageUser); err != nil {
		return nil, err
	}
	// The tasks map hf-secret as on a cluster; offline, its token is empty.
	secretFile := filepath.Join(o.Work, "hf-secret.env")
	if err := renameio.WriteFile(secretFile, []byte("HF_TOKEN=\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", secretFile, err)
	}
	secret, err := local.ReadSecretFile(secretFile)
	if err != nil {
		return nil, err
	}
	params := o.params()
	for _, k := range slices.Sorted(maps.Keys(params)) {
		fmt.Fprintf(o.Log, "rehearse: --param %s=%s\n", k, params[k])
	}
	tasks := &volumes{rt: rc, mounts: []local.Mount{
		{Host: data, Container: dataDir, ReadOnly: true},
		{Host: base, Container: baseDir, ReadOnly: true},
		{Host: hub, Container: hubDir},
	}}
	res, err := local.RunFile(ctx, o.Pipeline, local.Options{
		WorkDir: runs, RunID: runID, Params: params,
		Env:     []string{}, // nothing of this shell reaches a task
		Secrets: map[string]map[string]string{"hf-secret": secret},
		Runtime: tasks, Launcher: o.Launcher, Out: o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", o.Pipeline, err)
	}
	run := &pipelineRun{question: eval[0]}
	for _, t := range res.Tasks {
		if t.Name != "finetune" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(t.Outputs["output_model_dir"], "metrics.json"))
		if err == nil {
			err = json.Unmarshal(b, &run.metrics)
		}
		if err != nil {
			return nil, fmt.Errorf("finetune metrics: %w", err)
		}
		// What the KFP UI shows as scalar metrics: the Metrics artifact's
		// metadata in the executor output, read where the launcher reads it.
		if md := t.Metadata["metrics"]; md["steps"] != float64(run.metrics.Steps) || md["eval_loss"] == nil {
			return nil, fmt.Errorf("finetune's executor output has no metrics where the launcher reads it: metadata %v", t.Metadata)
		}
	}
	m := run.metrics
	switch {
	case params["qa_eval"] == "":
		fmt.Fprintf(o.Log, "rehearse: no held-out QA evaluation (qa_eval is empty); train loss %.4f, eval loss %.4f, %d steps\n", m.TrainLoss, m.EvalLoss, m.Steps)
	case m.QA.After.N == 0:
		return nil, fmt.Errorf("finetune's metrics have no held-out QA evaluation")
	default:
		fmt.Fprintf(o.Log, "rehearse: held-out QA (%d questions)   exact match   token F1\n", m.QA.After.N)
		fmt.Fprintf(o.Log, "rehearse: before fine-tuning          %11.3f   %8.3f\n", m.QA.Before.ExactMatch, m.QA.Before.F1)
		fmt.Fprintf(o.Log, "rehearse: after fine-tuning           %11.3f   %8.3f\n", m.QA.After.ExactMatch, m.QA.After.F1)
		fmt.Fprintf(o.Log, "rehearse: train loss %.4f, eval loss %.4f, %d steps\n", m.TrainLoss, m.EvalLoss, m.Steps)
	}
	// Serving runs on what upload pushed, not on the training output.
	run.model = filepath.Join(o.Work, "served-model")
	if err := os.RemoveAll(run.model); err != nil {
		return nil, err
	}
	sha, err := gitremote.Checkout(ctx, filepath.Join(hub, "kfllm-demo.git"), "main", run.model)
	if err != nil {
		return nil, fmt.Errorf("check out the uploaded model: %w", err)
	}
	// Owned by the serving container's user, as KServe's storage
	// initializer leaves it under the pod's fsGroup.
	if err := chownTree(run.model, ImageUser); err != nil {
		return nil, err
	}
	if got := res.Outputs["commit_sha"].GetStringValue(); got != sha {
		return nil, fmt.Errorf("the pipeline's output commit_sha is %q, the uploaded repository's main is %s", got, sha)
	}
	fmt.Fprintf(o.Log, "rehearse: uploaded model at commit %s (the pipeline's commit_sha) -> %s\n", sha, run.model)
	return run, nil
}

// baseModel converts the demo's base model once into WORK/base-model.
func (o Options) baseModel(ctx context.Context) (string, error) {
	dir := filepath.Join(o.Work, "base-model")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir, nil
	}
	fmt.Fprintf(o.Log, "rehearse: converting %s into %s\n", o.BaseGGUF, dir)
	if err := gguf.ConvertLlama(ctx, o.BaseGGUF, dir, gguf.ConvertOptions{}); err != nil {
		return "", fmt.Errorf("base model: %w", err)
	}
	return dir, nil
}

// volumes adds the rehearsal's data volumes to every task's container.
type volumes struct {
	rt     local.Runtime
	mounts []local.Mount
}

var _ local.Runtime = (*volumes)(nil)

func (v *volumes) Run(ctx context.Context, c local.Container) (int, error) {
	c.Mounts = append(slices.Clone(v.mounts), c.Mounts...)
	return v.rt.Run(ctx, c)
}

func writeJSONL(path string, recs []synth.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range recs {
		if err := enc.Encode(map[string]string{"context": r.Context, "question": r.Question, "answer": r.Answer}); err != nil {
			return err
		}
	}
	if err := renameio.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
