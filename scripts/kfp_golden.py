"""Compile kfllm's fine-tuning pipeline with the KFP Python SDK.

This is the reference that internal/kfp's Go definition is compared with
(internal/kfp/finetune TestMatchesKFPSDK): the same four container components,
the same parameters, resources, caching, retry policies, hf-secret wiring,
checkpoint claim (kfp.kubernetes.CreatePVC / mount_pvc / DeletePVC), upload's
output parameters and the pipeline's outputs, written with the SDK's own API
(dsl.container_component, set_retry, kfp.kubernetes.use_secret_as_env).
fetch, tokenize and finetune take the executor input
(dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER, {{$}}): they write their
executor output at its outputs.outputFile, which KFP 2.15 moved into the
task root. The SDK's PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER
({{$.outputs.output_file}}) would name that file alone, but the open-source
launcher does not resolve it (launcher_v2.go getPlaceholders).

    python scripts/kfp_golden.py [-o internal/kfp/testdata/kfp_sdk_golden.yaml]

Requirements: scripts/kfp_requirements.txt. Development only; Go tests read the
committed output and never need Python.
"""

import argparse
import os

from typing import NamedTuple

from kfp import compiler, dsl, kubernetes

REGISTRY = os.environ.get("IMAGE_REGISTRY", "ghcr.io/kfllm")
TAG = os.environ.get("IMAGE_TAG", "dev")


CHECKPOINT_DIR = "/kfllm/checkpoints"
# finetune's LoRA defaults (internal/kfp/finetune; docs/benchmarks.md, "LoRA
# defaults for the demo", measured them).
LORA_R = 16
LORA_ALPHA = 32
LORA_TARGETS = "all-linear"
LEARNING_RATE = 0.001


def image(name: str) -> str:
    return f"{REGISTRY}/kfllm-{name}:{TAG}"


@dsl.container_component
def fetch(source: str, split: str, task: str, output_dataset: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image=image("fetch"),
        command=["/usr/local/bin/fetch"],
        args=[
            "--source", source,
            "--split", split,
            "--task", task,
            "--output-dataset", output_dataset.path,
            "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
        ],
    )


@dsl.container_component
def tokenize(
    input_dataset: dsl.Input[dsl.Dataset],
    tokenizer: str,
    max_length: int,
    output_dataset: dsl.Output[dsl.Dataset],
):
    return dsl.ContainerSpec(
        image=image("tokenize"),
        command=["/usr/local/bin/tokenize"],
        args=[
            "--input-dataset", input_dataset.path,
            "--tokenizer", tokenizer,
            "--max-length", max_length,
            "--output-dataset", output_dataset.path,
            "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
        ],
    )


@dsl.container_component
def finetune(
    input_dataset: dsl.Input[dsl.Dataset],
    base_model: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    lora_r: int,
    lora_alpha: int,
    lora_target_modules: str,
    merge_lora: bool,
    max_steps: int,
    warmup_steps: int,
    seed: int,
    qa_eval: str,
    save_steps: int,
    workers: int,
    distributed_runtime: str,
    worker_accelerator: str,
    worker_node_selector: dict,
    worker_tolerations: list,
    output_model_dir: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    report: dsl.Output[dsl.HTML],
    eval_table: dsl.Output[dsl.Markdown],
):
    return dsl.ContainerSpec(
        image=image("finetune"),
        command=["/usr/local/bin/finetune"],
        args=[
            "--input-dataset", input_dataset.path,
            "--base-model", base_model,
            "--epochs", epochs,
            "--learning-rate", learning_rate,
            "--batch-size", batch_size,
            "--lora-r", lora_r,
            "--lora-alpha", lora_alpha,
            "--lora-target-modules", lora_target_modules,
            # Go's flag package reads a boolean flag's value only as FLAG=VALUE.
            f"--merge-lora={merge_lora}",
            "--max-steps", max_steps,
            "--warmup-steps", warmup_steps,
            "--seed", seed,
            "--qa-eval", qa_eval,
            "--save-steps", save_steps,
            "--checkpoint-dir", CHECKPOINT_DIR,
            # workers > 1: this task launches the ranks as a PyTorchJob or
            # TrainJob on the claim mounted at the checkpoint directory, which
            # it finds in its own pod (internal/distjob).
            "--workers", workers,
            "--distributed-runtime", distributed_runtime,
            "--worker-image", image("finetune"),
            "--worker-cpu-request", "4", "--worker-cpu-limit", "8",
            "--worker-memory-request", "16G", "--worker-memory-limit", "32G",
            "--worker-accelerator", worker_accelerator,
            "--worker-accelerator-count", "1",
            "--worker-node-selector", worker_node_selector,
            "--worker-tolerations", worker_tolerations,
            "--worker-hf-secret", "hf-secret",
            "--output-model-dir", output_model_dir.path,
            "--metrics-output", metrics.path,
            "--html-output", report.path,
            "--markdown-output", eval_table.path,
            "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
        ],
    )


# upload writes these to the files their output_file placeholders name, which
# the KFP launcher reads after the command exits (internal/kfp/executor).
@dsl.container_component
def upload(
    model_dir: dsl.Input[dsl.Model],
    hf_repo: str,
    commit_sha: dsl.OutputPath(str),
    repo_url: dsl.OutputPath(str),
):
    return dsl.ContainerSpec(
        image=image("upload"),
        command=["/usr/local/bin/upload"],
        args=[
            "--model-dir", model_dir.path,
            "--repo", hf_repo,
            "--commit-sha-output", commit_sha,
            "--repo-url-output", repo_url,
        ],
    )


def retry(task):
    task.set_retry(num_retries=3, backoff_duration="10s", backoff_factor=2, backoff_max_duration="300s")


def hf_token(task):
    kubernetes.use_secret_as_env(
        task, secret_name="hf-secret", secret_key_to_env={"HF_TOKEN": "HF_TOKEN"}
    )


def build(accelerator="nvidia.com/gpu", node_selector=None, tolerations=(), claim=None):
    """The pipeline. finetune's GPU scheduling is three pipeline parameters,
    whose defaults `pipeline compile --accelerator --node-selector
    --toleration` set: accelerator (set_accelerator_type on a pipeline
    parameter), node_selector (a dict: kfp-kubernetes' add_node_selector_json)
    and tolerations (a list of Kubernetes tolerations: add_toleration_json).
    With claim, finetune mounts the existing claim named by pipeline parameter
    checkpoint_pvc (default claim) instead of one the run creates and deletes."""
    node_selector = dict(node_selector or {})
    tolerations = [dict(t) for t in tolerations]

    def steps(claim, source, split, task, base_model, hf_repo, max_length, epochs, learning_rate,
              batch_size, lora_r, lora_alpha, lora_target_modules, merge_lora, max_steps, warmup_steps, seed, qa_eval, save_steps,
              accelerator, node_selector, tolerations, workers, distributed_runtime):
        f = fetch(source=source, split=split, task=task)
        f.set_display_name("fetch")
        f.set_cpu_request("1").set_cpu_limit("2").set_memory_request("2G").set_memory_limit("4G")
        hf_token(f)
        retry(f)

        t = tokenize(input_dataset=f.outputs["output_dataset"], tokenizer=base_model, max_length=max_length)
        t.set_display_name("tokenize")
        t.set_cpu_request("2").set_cpu_limit("4").set_memory_request("4G").set_memory_limit("8G")
        hf_token(t)

        ft = finetune(
            input_dataset=t.outputs["output_dataset"],
            base_model=base_model,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_target_modules=lora_target_modules,
            merge_lora=merge_lora,
            max_steps=max_steps,
            warmup_steps=warmup_steps,
            seed=seed,
            qa_eval=qa_eval,
            save_steps=save_steps,
            workers=workers,
            distributed_runtime=distributed_runtime,
            worker_accelerator=accelerator,
            worker_node_selector=node_selector,
            worker_tolerations=tolerations,
        )
        ft.set_display_name("finetune")
        ft.set_cpu_request("4").set_cpu_limit("8").set_memory_request("16G").set_memory_limit("32G")
        ft.set_accelerator_type(accelerator).set_accelerator_limit(1)
        hf_token(ft)
        kubernetes.mount_pvc(ft, pvc_name=claim, mount_path=CHECKPOINT_DIR)
        kubernetes.add_node_selector_json(ft, node_selector_json=node_selector)
        kubernetes.add_toleration_json(ft, toleration_json=tolerations)
        retry(ft)

        u = upload(model_dir=ft.outputs["output_model_dir"], hf_repo=hf_repo)
        u.set_display_name("upload")
        u.set_cpu_request("1").set_cpu_limit("2").set_memory_request("2G").set_memory_limit("4G")
        u.set_caching_options(False)
        hf_token(u)
        retry(u)
        return u

    Outputs = NamedTuple("Outputs", commit_sha=str, repo_url=str)
    info = dict(
        name="kfllm-finetune",
        description="Fetch a dataset, tokenize it, fine-tune a causal LM with LoRA, upload it to Hugging Face.",
    )

    @dsl.pipeline(**info)
    def kfllm_finetune(
        source: str = "hf://datasets/rajpurkar/squad",
        split: str = "train",
        task: str = "qa",
        base_model: str = "HuggingFaceTB/SmolLM2-135M",
        hf_repo: str = "",
        max_length: int = 512,
        epochs: int = 1,
        learning_rate: float = LEARNING_RATE,
        batch_size: int = 8,
        lora_r: int = LORA_R,
        lora_alpha: int = LORA_ALPHA,
        lora_target_modules: str = LORA_TARGETS,
        merge_lora: bool = False,
        max_steps: int = 0,
        warmup_steps: int = 0,
        seed: int = 42,
        qa_eval: str = "",
        save_steps: int = 100,
        checkpoint_size: str = "20Gi",
        checkpoint_storage_class: str = "standard",
        accelerator: str = accelerator,
        node_selector: dict = node_selector,
        tolerations: list = tolerations,
        workers: int = 1,
        distributed_runtime: str = "pytorchjob",
        checkpoint_access_modes: list = ["ReadWriteOnce"],
    ) -> Outputs:
        pvc = kubernetes.CreatePVC(
            pvc_name_suffix="-kfllm-checkpoints",
            access_modes=checkpoint_access_modes,
            size=checkpoint_size,
            storage_class_name=checkpoint_storage_class,
        )
        pvc.set_caching_options(False)
        u = steps(pvc.outputs["name"], source, split, task, base_model, hf_repo, max_length, epochs, learning_rate,
                  batch_size, lora_r, lora_alpha, lora_target_modules, merge_lora, max_steps, warmup_steps, seed, qa_eval, save_steps,
                  accelerator, node_selector, tolerations, workers, distributed_runtime)
        d = kubernetes.DeletePVC(pvc_name=pvc.outputs["name"]).after(u)
        d.set_caching_options(False)
        return Outputs(commit_sha=u.outputs["commit_sha"], repo_url=u.outputs["repo_url"])

    @dsl.pipeline(**info)
    def kfllm_finetune_on_claim(
        source: str = "hf://datasets/rajpurkar/squad",
        split: str = "train",
        task: str = "qa",
        base_model: str = "HuggingFaceTB/SmolLM2-135M",
        hf_repo: str = "",
        max_length: int = 512,
        epochs: int = 1,
        learning_rate: float = LEARNING_RATE,
        batch_size: int = 8,
        lora_r: int = LORA_R,
        lora_alpha: int = LORA_ALPHA,
        lora_target_modules: str = LORA_TARGETS,
        merge_lora: bool = False,
        max_steps: int = 0,
        warmup_steps: int = 0,
        seed: int = 42,
        qa_eval: str = "",
        save_steps: int = 100,
        checkpoint_pvc: str = claim or "",
        accelerator: str = accelerator,
        node_selector: dict = node_selector,
        tolerations: list = tolerations,
        workers: int = 1,
        distributed_runtime: str = "pytorchjob",
    ) -> Outputs:
        u = steps(checkpoint_pvc, source, split, task, base_model, hf_repo, max_length, epochs, learning_rate,
                  batch_size, lora_r, lora_alpha, lora_target_modules, merge_lora, max_steps, warmup_steps, seed, qa_eval, save_steps,
                  accelerator, node_selector, tolerations, workers, distributed_runtime)
        return Outputs(commit_sha=u.outputs["commit_sha"], repo_url=u.outputs["repo_url"])

    return kfllm_finetune_on_claim if claim else kfllm_finetune


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="internal/kfp/testdata/kfp_sdk_golden.yaml")
    p.add_argument("--gpu", action="store_true",
                   help="compile the GPU-scheduling variant: accelerator nvidia.com/gpu on a node pool "
                        "cloud.google.com/gke-accelerator=nvidia-l4 tainted nvidia.com/gpu=present:NoSchedule")
    p.add_argument("--claim", metavar="NAME",
                   help="compile the variant on an existing claim (pipeline compile --checkpoint-claim NAME)")
    a = p.parse_args()
    pipeline = build(claim=a.claim)
    if a.gpu:
        pipeline = build(
            accelerator="nvidia.com/gpu",
            node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
            tolerations=[
                dict(key="nvidia.com/gpu", operator="Equal", value="present", effect="NoSchedule"),
                dict(key="cloud.google.com/gke-preemptible", operator="Exists", effect="NoExecute", tolerationSeconds=300),
            ],
        )
    compiler.Compiler().compile(pipeline, package_path=a.output)


if __name__ == "__main__":
    main()
