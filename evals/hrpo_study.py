"""The HRPO study of docs/hrpo.md: the untrained baseline, the decode-speed benchmark and the report.

    python -m reasonkit.evals.hrpo_study baseline --out runs/hrpo/baseline.json --ops 5 6
    python -m reasonkit.evals.hrpo_study bench --out runs/hrpo/bench.json
    python -m reasonkit.evals.hrpo_study channel --out runs/hrpo/channel.json --temperature 1.0
    python -m reasonkit.evals.hrpo_study report runs/hrpo            # markdown table + curves.png

``baseline`` scores the model before training on the test problems every ``train-hrpo`` arm is
scored on (greedy CoT, the same token budget). ``bench`` times, in one process and alternating so that
machine load hits both alike, the batched hybrid decode of an HRPO rollout against the same model's
plain batched decode (the GRPO rollout through the same white-box loop, and transformers' ``generate``),
tokens per second. ``channel`` measures how far h is from the sampled token's embedding in a rollout. ``report`` reads every ``ARM-sSEED`` run directory under a folder: test accuracy
with a Wilson interval per run, per-arm mean and seed spread, reward / hidden share / length at the
start and the end of training, the step's time split, and curves of every run in one figure.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the arms in the order of the table
ARMS = ("grpo", "hrpo", "raw-hidden", "fixed-interp")


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def _option(argv: list[str], name: str, default: Any = None, many: bool = False) -> Any:
    if name not in argv:
        return default
    at = argv.index(name) + 1
    if not many:
        return argv[at]
    values = []
    while at < len(argv) and not argv[at].startswith("--"):
        values.append(argv[at])
        at += 1
    return values


def baseline(argv: list[str]) -> dict[str, Any]:
    """Greedy CoT of the untrained model on the arms' test problems."""
    import torch

    from reasonkit.backends.loading import load_backend
    from reasonkit.hrpo.config import HRPOConfig
    from reasonkit.hrpo.evaluate import evaluate
    from reasonkit.hrpo.problems import evaluation_problems

    torch.set_num_threads(1)
    ops = tuple(int(k) for k in _option(argv, "--ops", ["6", "7", "8"], many=True))
    count = int(_option(argv, "--test-problems", "200"))
    budget = int(_option(argv, "--max-new-tokens", "256"))
    model = _option(argv, "--model", "builtin")
    cfg = HRPOConfig(out="unused", model=model, ops=ops)
    backend = load_backend(model, threads=1)
    records = evaluate(backend, evaluation_problems(cfg, "test", count), budget)
    correct = sum(r["correct"] for r in records)
    result = {"model": model, "ops": list(ops), "max_new_tokens": budget, "test_correct": correct,
              "test_n": len(records), "test_accuracy": correct / len(records),
              "test_mean_tokens": statistics.mean(r["tokens"] for r in records)}  # fmt: skip
    return result


def bench(argv: list[str]) -> dict[str, Any]:
    """Tokens/s of the hybrid rollout decode against the plain decodes, alternating, ``--repeats`` times."""
    import torch

    from reasonkit.backends.loading import load_backend
    from reasonkit.hrpo.build import build_policy, decode_hooks
    from reasonkit.hrpo.rollout import rollout_generator, sample
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks import arith

    torch.set_num_threads(1)
    rows = int(_option(argv, "--rows", "64"))
    repeats = int(_option(argv, "--repeats", "3"))
    budget = int(_option(argv, "--max-new-tokens", "256"))
    ops = [int(k) for k in _option(argv, "--ops", ["5", "6"], many=True)]
    base: Any = load_backend(_option(argv, "--model", "builtin"), threads=1)
    pack = resolve_pack(None, base)
    problems = arith.generate(rows, split="test", seed=0, n_ops=ops)
    prompts = [base.encode(pack.cot(p)) for p in problems]
    stop = tuple(pack.sampling("cot", "arith").stop)
    policy = build_policy(base.model.float(), base.tokenizer, mode="hrpo", temperature=1.0, top_k=50,
                          lora_rank=None, lora_alpha=None, r_min=0.99, r_max=0.999, fixed_a=None, seed=0)  # fmt: skip
    policy.eval()
    card = {"mode": "hrpo", "temperature": 1.0, "top_k": 50, "delimiter": "The answer is"}
    hybrid = decode_hooks(policy.mixer, base.tokenizer, card, record=True)
    plain = decode_hooks(None, base.tokenizer, card, record=True)
    eos = sorted(base.eos_ids)

    def rollout(hooks: Any, repeat: int) -> int:
        generators = [rollout_generator(repeat, 0, i, 0) for i in range(rows)]
        out = sample(policy.lm, hooks, prompts, generators, max_new_tokens=budget, top_k=50, eos_ids=eos,
                     stop=stop, pad_id=base.pad_id)  # fmt: skip
        return sum(out.lengths)

    def generate(repeat: int) -> int:
        width = max(map(len, prompts))
        ids = torch.tensor([[base.pad_id] * (width - len(p)) + list(p) for p in prompts])
        mask = (
            torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]
        ).long()
        torch.manual_seed(repeat)
        with torch.no_grad():
            out = policy.lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                           top_k=50, max_new_tokens=budget, pad_token_id=base.pad_id,
                                           eos_token_id=eos)  # fmt: skip
        new = out[:, width:]
        ends = [(row == base.pad_id).nonzero() for row in new]
        return sum(int(e[0]) if len(e) else new.shape[1] for e in ends)

    timings: dict[str, list[float]] = {
        "hybrid (HRPO rollout)": [],
        "plain (GRPO rollout)": [],
        "generate": [],
    }
    tokens: dict[str, int] = dict.fromkeys(timings, 0)
    seconds: dict[str, float] = dict.fromkeys(timings, 0.0)
    for repeat in range(repeats):
        for name in timings:
            started = time.perf_counter()
            n = (
                rollout(hybrid, repeat)
                if name.startswith("hybrid")
                else rollout(plain, repeat)
                if name.startswith("plain")
                else generate(repeat)
            )
            spent = time.perf_counter() - started
            timings[name].append(n / spent)
            tokens[name] += n
            seconds[name] += spent
    rates = {name: tokens[name] / seconds[name] for name in timings}
    return {
        "rows": rows, "max_new_tokens": budget, "ops": ops, "repeats": repeats, "threads": 1,
        "tokens_per_s": {k: round(v, 1) for k, v in rates.items()},
        "per_repeat_tokens_per_s": {k: [round(x, 1) for x in v] for k, v in timings.items()},
        "hybrid_over_plain": round(rates["hybrid (HRPO rollout)"] / rates["plain (GRPO rollout)"], 3),
        "hybrid_over_generate": round(rates["hybrid (HRPO rollout)"] / rates["generate"], 3),
    }  # fmt: skip


def channel(argv: list[str]) -> dict[str, Any]:
    """What the hidden channel carries at the start: one HRPO rollout of the untrained policy, and at
    its thinking columns the cosine and relative distance between h and the token's embedding ê and
    the probability of the sampled token (h = ê exactly when that probability is 1)."""
    import torch

    from reasonkit.backends.loading import load_backend
    from reasonkit.hrpo.build import build_policy, decode_hooks
    from reasonkit.hrpo.rollout import rollout_generator, sample
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks import arith

    torch.set_num_threads(1)
    rows = int(_option(argv, "--rows", "16"))
    tau = float(_option(argv, "--temperature", "1.0"))
    ops = [int(k) for k in _option(argv, "--ops", ["5", "6"], many=True)]
    base: Any = load_backend(_option(argv, "--model", "builtin"), threads=1)
    pack = resolve_pack(None, base)
    prompts = [base.encode(pack.cot(p)) for p in arith.generate(rows, split="train", seed=0, n_ops=ops)]
    policy = build_policy(base.model.float(), base.tokenizer, mode="hrpo", temperature=tau, top_k=50,
                          lora_rank=None, lora_alpha=None, r_min=0.99, r_max=0.999, fixed_a=None, seed=0)  # fmt: skip
    card = {"mode": "hrpo", "temperature": tau, "top_k": 50, "delimiter": "The answer is"}
    hooks = decode_hooks(policy.mixer, base.tokenizer, card, record=True)
    rollout = sample(policy.lm, hooks, prompts, [rollout_generator(0, 0, i, 0) for i in range(rows)],
                     max_new_tokens=256, top_k=50, eos_ids=sorted(base.eos_ids),
                     stop=tuple(pack.sampling("cot", "arith").stop), pad_id=base.pad_id)  # fmt: skip
    assert rollout.hidden is not None
    with torch.no_grad():
        embeds = policy.lm.embed(rollout.input_ids)
    mask = rollout.thinking
    h, e = rollout.hidden[mask], embeds[mask].float()
    cos = torch.nn.functional.cosine_similarity(h, e, dim=-1)
    chosen = torch.exp(rollout.logprobs[mask])
    return {
        "rows": rows, "temperature": tau, "ops": ops, "thinking_tokens": int(mask.sum()),
        "cos_h_e_mean": round(float(cos.mean()), 5), "share_cos_above_0.99": round(float((cos > 0.99).float().mean()), 4),
        "relative_distance_mean": round(float(((h - e).norm(dim=-1) / e.norm(dim=-1)).mean()), 5),
        "p_sampled_mean": round(float(chosen.mean()), 5), "share_p_above_0.9": round(float((chosen > 0.9).float().mean()), 4),
        "hidden_share_mean": round(float(rollout.shares.mean()), 5),
    }  # fmt: skip


def _runs(folder: Path) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = re.fullmatch(r"(.+)-s(\d+)", path.name)
        if match and (path / "summary.json").is_file():
            found.setdefault(match.group(1), {})[int(match.group(2))] = path
    return found


def _window(records: Sequence[dict[str, Any]], key: str, last: bool, k: int = 4) -> float:
    values = [float(r[key]) for r in records if key in r]
    part = values[-k:] if last else values[:k]
    return statistics.mean(part) if part else float("nan")


def report(argv: list[str]) -> str:
    from reasonkit.plots import line_plot
    from reasonkit.rundir import read_jsonl

    folder = Path(argv[0])
    runs = _runs(folder)
    lines = ["| arm | seed | test accuracy [95% Wilson] | reward first 4 → last 4 steps | hidden share first → last "
             "| completion tokens first → last | step s (rollout / reference / update) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    arms: dict[str, list[float]] = {}
    accs_by: dict[tuple[str, int], float] = {}
    splits: dict[str, list[float]] = {"rollout_s": [], "reference_s": [], "update_s": []}
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {"reward": {}, "hidden": {}, "length": {}}
    for arm in sorted(runs, key=lambda a: ARMS.index(a) if a in ARMS else 99):
        for seed, path in sorted(runs[arm].items()):
            summary = json.loads((path / "summary.json").read_text())
            records = [r for r in read_jsonl(path / "metrics.jsonl") if "reward" in r]
            if summary.get("test_n"):
                lo, hi = wilson(summary["test_correct"], summary["test_n"])
                acc = summary["test_correct"] / summary["test_n"]
                arms.setdefault(arm, []).append(acc)
                accs_by[(arm, seed)] = acc
                test = f"{acc:.3f} [{lo:.3f}, {hi:.3f}] (n={summary['test_n']})"
            else:
                test = f"({summary.get('status')})"
            split = [statistics.median(float(r[k]) for r in records) for k in splits]
            if arm == "hrpo":
                for k, v in zip(splits, split):
                    splits[k].append(v)
            lines.append(
                f"| {arm} | {seed} | {test} | {_window(records, 'reward', False):.3f} → "
                f"{_window(records, 'reward', True):.3f} | {_window(records, 'hidden_share', False):.5f} → "
                f"{_window(records, 'hidden_share', True):.5f} | {_window(records, 'length', False):.0f} → "
                f"{_window(records, 'length', True):.0f} | {sum(split):.1f} ({' / '.join(f'{s:.1f}' for s in split)}) |"
            )
            steps = [float(r["step"]) for r in records]
            label = f"{arm} s{seed}"
            curves["reward"][label] = (steps, _smooth([float(r["reward"]) for r in records]))
            curves["hidden"][label] = (steps, [float(r.get("hidden_share", 0.0)) for r in records])
            curves["length"][label] = (steps, _smooth([float(r["length"]) for r in records]))
    lines += [
        "",
        "| arm | seeds | mean test accuracy | seed spread (sd) | min–max |",
        "|---|---|---|---|---|",
    ]
    for arm, accs in arms.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        lines.append(
            f"| {arm} | {len(accs)} | {statistics.mean(accs):.3f} | {sd:.3f} | {min(accs):.3f}–{max(accs):.3f} |"
        )
    baseline_file = folder / "baseline.json"
    if baseline_file.is_file():
        b = json.loads(baseline_file.read_text())
        lo, hi = wilson(b["test_correct"], b["test_n"])
        lines.append(f"| untrained | – | {b['test_accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | – | – |")
    paired = {seed: (accs_by[("hrpo", seed)] - accs_by[("grpo", seed)]) for arm, seed in accs_by if arm == "hrpo"
              and ("grpo", seed) in accs_by}  # fmt: skip
    if paired:
        diffs = list(paired.values())
        spread = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        lines += ["", "HRPO − GRPO test accuracy, paired by seed (same training prompts, same LoRA init): "
                  + ", ".join(f"s{k} {v:+.3f}" for k, v in sorted(paired.items()))
                  + f"; mean {statistics.mean(diffs):+.3f}, sd {spread:.3f}"]  # fmt: skip
    drifts = [(arm, seed, lambda_drift(path)) for arm in runs for seed, path in sorted(runs[arm].items())]
    drifts = [d for d in drifts if d[2] is not None]
    if drifts:
        lines += ["", "| arm | seed | mean ΔΛ | ΔΛ from weight decay alone | rest (gradient): mean, sd |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for arm, seed, d in drifts:
            assert d is not None
            lines.append(f"| {arm} | {seed} | {d['mean_change']:+.5f} | {d['decay_only_mean_change']:+.5f} | "
                         f"{d['gradient_part_mean']:+.5f}, {d['gradient_part_sd']:.5f} |")  # fmt: skip
    if curves["reward"]:
        line_plot(folder / "reward.png", curves["reward"], title="train-hrpo: training reward (3-step mean)",
                  xlabel="step", ylabel="reward", ylim=(0, 1))  # fmt: skip
        line_plot(folder / "hidden_share.png", curves["hidden"], title="hidden share sqrt(1-a^2) while thinking",
                  xlabel="step", ylabel="share")  # fmt: skip
        line_plot(folder / "length.png", curves["length"], title="completion length (3-step mean)",
                  xlabel="step", ylabel="tokens")  # fmt: skip
    return "\n".join(lines)


def lambda_drift(path: Path) -> dict[str, float] | None:
    """How far Λ moved in a gated run, against what AdamW's decoupled weight decay alone does to it
    (Λ ← Λ·(1 − lr_t·wd) each step): the mean change, the decay-only mean change, and the spread of
    the rest (the gradient's part). None for runs without gates or without a checkpoint."""
    import torch
    from safetensors.torch import load_file

    from reasonkit.hrpo.build import make_mixer
    from reasonkit.hrpo.train import lr_factor

    run = json.loads((path / "run.json").read_text())
    saved = path / "checkpoint" / "policy" / "mixer.safetensors"
    if run["mode"] not in ("hrpo", "raw-hidden") or not saved.is_file():
        return None
    state = json.loads((path / "checkpoint" / "trainer" / "state.json").read_text())
    init = make_mixer(
        run["mode"], 192, run["r_min"], run["r_max"], run["fixed_a"], run["seed"], torch.zeros(1)
    )
    assert init is not None
    start, end = init.Lambda.detach(), load_file(saved)["Lambda"]
    if start.shape != end.shape:  # not the built-in model's width: rebuild at the saved width
        init = make_mixer(run["mode"], end.shape[0], run["r_min"], run["r_max"], run["fixed_a"], run["seed"],
                          torch.zeros(1))  # fmt: skip
        assert init is not None
        start = init.Lambda.detach()
    factor = 1.0
    for step in range(int(state["step"])):
        factor *= (
            1.0 - run["lr_lambda"] * lr_factor(step, run["steps"], run["warmup_ratio"]) * run["weight_decay"]
        )
    decay_only = start * factor
    return {
        "mean_change": float((end - start).mean()),
        "decay_only_mean_change": float((decay_only - start).mean()),
        "gradient_part_mean": float((end - decay_only).mean()),
        "gradient_part_sd": float((end - decay_only).std()),
    }


def _smooth(values: Sequence[float], window: int = 3) -> list[float]:
    return [statistics.mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("baseline", "bench", "channel", "report"):
        print(__doc__)
        return 2
    command, rest = args[0], args[1:]
    if command == "report":
        text = report(rest)
        print(text)
        (Path(rest[0]) / "report.md").write_text(text + "\n", encoding="utf-8")
        return 0
    result = {"baseline": baseline, "bench": bench, "channel": channel}[command](rest)
    print(json.dumps(result, indent=1))
    out = _option(rest, "--out")
    if out:
        Path(out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
