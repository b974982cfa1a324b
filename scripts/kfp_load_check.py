"""Check that the KFP SDK accepts the pipeline YAML `pipeline compile` writes.

Loads the YAML with kfp.components.load_component_from_file, uses the loaded
pipeline as a component inside another pipeline, compiles that with the KFP
compiler, and records what happened as JSON (asserted by
internal/kfp/finetune/finetune_test.go TestKFPLoadsOurYAML).

    python scripts/kfp_load_check.py [YAML] [-o internal/kfp/testdata/kfp_load_check.json]

Requirements: scripts/kfp_requirements.txt. Exits 1 when KFP rejects the YAML.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

import kfp
import yaml
from kfp import compiler, components, dsl


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("yaml", nargs="?", default="internal/kfp/testdata/kfllm-finetune.yaml")
    p.add_argument("-o", "--output", default="internal/kfp/testdata/kfp_load_check.json")
    a = p.parse_args()

    with open(a.yaml, "rb") as f:
        data = f.read()
    rec = {
        "kfp": kfp.__version__,
        "input": a.yaml,
        "sha256": hashlib.sha256(data).hexdigest(),
        "loaded": False,
        "component_name": "",
        "component_inputs": [],
        "compiled": False,
        "outer_tasks": [],
        "outer_secret_executors": [],
        "outer_finetune_accelerator": {},
        "error": "",
    }
    try:
        comp = components.load_component_from_file(a.yaml)
        rec["loaded"] = True
        rec["component_name"] = comp.name
        rec["component_inputs"] = sorted(comp.component_spec.inputs or {})

        @dsl.pipeline(name="kfllm-load-check")
        def outer(hf_repo: str = "someone/model"):
            comp(hf_repo=hf_repo, epochs=2, learning_rate=0.0001)

        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "outer.yaml")
            compiler.Compiler().compile(outer, package_path=out)
            with open(out) as f:
                docs = list(yaml.safe_load_all(f))
        rec["outer_tasks"] = sorted(docs[0]["root"]["dag"]["tasks"])
        # The platform spec (hf-secret) and the GPU request survive nesting.
        if len(docs) > 1:
            execs = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
            rec["outer_secret_executors"] = sorted(e for e, c in execs.items() if c.get("secretAsEnv"))
        fin = docs[0]["deploymentSpec"]["executors"]["exec-finetune"]["container"]
        rec["outer_finetune_accelerator"] = fin.get("resources", {}).get("accelerator", {})
        rec["compiled"] = True
    except Exception as e:  # recorded, then reported through the exit code
        rec["error"] = f"{type(e).__name__}: {e}"

    with open(a.output, "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(rec, indent=2, sort_keys=True))
    sys.exit(0 if rec["compiled"] else 1)


if __name__ == "__main__":
    main()
