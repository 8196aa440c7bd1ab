"""lm-eval's own ``hf`` model on the shipped built-in model, samples logged under OUT_DIR.

    PYTHONPATH=<lm-eval venv site-packages> .venv/bin/python docs/lm_eval/hf_builtin.py OUT_DIR

lm-eval's CLI cannot load it: the model type (reasonkit_gated_lm) registers with transformers' Auto
classes when reasonkit.models is imported, so this imports it first and calls lm-eval's Python API.
"""

import json
import sys

from lm_eval import simple_evaluate
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager

import reasonkit.models  # noqa: F401  registers reasonkit_gated_lm with transformers' Auto classes

out = sys.argv[1]
tracker = EvaluationTracker(output_path=out)
results = simple_evaluate(
    model="hf",
    model_args="pretrained=reasonkit/models/zoo/builtin,dtype=float32,add_bos_token=False",
    tasks=["rk_arith_gen", "rk_arith_mc", "rk_arith_mc_ans"],
    task_manager=TaskManager(include_path="docs/lm_eval"),
    device="cpu",
    batch_size=1,
    log_samples=True,
    evaluation_tracker=tracker,
)
tracker.save_results_aggregated(results=results, samples=results["samples"])
for task, samples in results["samples"].items():
    tracker.save_results_samples(task_name=task, samples=samples)
print(
    json.dumps(
        {
            t: {k: v for k, v in r.items() if not k.endswith("stderr,none")}
            for t, r in results["results"].items()
        }
    )
)
