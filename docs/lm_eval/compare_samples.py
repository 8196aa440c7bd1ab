"""Compare two lm-eval runs made with --log_samples: per-document log-likelihoods / generations and acc.

python docs/lm_eval/compare_samples.py OUT_DIR_A OUT_DIR_B [TASK ...]
"""

from __future__ import annotations

import glob
import json
import sys


def samples(out_dir: str, task: str) -> list[dict]:
    (path,) = glob.glob(f"{out_dir}/*/samples_{task}_2*.jsonl")  # _2: the timestamp, not a longer task name
    return sorted((json.loads(line) for line in open(path)), key=lambda s: s["doc_id"])


def main(a: str, b: str, tasks: list[str]) -> None:
    for task in tasks:
        rows_a, rows_b = samples(a, task), samples(b, task)
        assert [r["doc_id"] for r in rows_a] == [r["doc_id"] for r in rows_b]
        worst, same = 0.0, 0
        for x, y in zip(rows_a, rows_b):
            if "acc" in x:  # loglikelihood: one (logL, is_greedy) per choice
                for (la, _), (lb, _) in zip((r[0] for r in x["resps"]), (r[0] for r in y["resps"])):
                    worst = max(worst, abs(float(la) - float(lb)))
                same += x["acc"] == y["acc"]
            else:
                same += x["filtered_resps"] == y["filtered_resps"]
        what = f"max |logL difference| {worst:.1e}" if "acc" in rows_a[0] else "generated text compared"
        print(f"{task}: {len(rows_a)} docs, {same} with the same result; {what}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] or ["rk_arith_mc", "rk_arith_mc_ans", "rk_arith_gen"])
