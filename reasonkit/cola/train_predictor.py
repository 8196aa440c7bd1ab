"""``reasonkit cola train-predictor RUN``: a question -> path predictor from a search run, tested on held-out problems.

    reasonkit cola train-predictor runs/cola-arith                 # then:
    reasonkit eval --bench arith --model cola:runs/cola-arith/predictor --out runs/eval-cola

Steps (the run directory's settings — model, benchmark, prompt, budget — are reused):

1. candidates: the ``--candidates`` - 1 paths found correct for the most searched problems, plus the
   default path;
2. labels: every candidate scored on every searched problem (path-major; pairs the search already
   scored come from its reward table), so each (problem, candidate) outcome is known;
3. features and training: :func:`~reasonkit.cola.predictor.prompt_features`, :func:`~.predictor.fit`;
4. held-out evaluation, no answer key involved in the choice: the next ``--heldout`` problems of the
   benchmark after the searched ones (same order, same filter); one path per problem, as chosen,
   graded; next to the default path and to the best single candidate (chosen on the training problems).

Writes ``RUN/predictor/`` (predictor.safetensors, predictor.json, evaluation.json, choices.jsonl) and
adds the predictor's section to ``RUN/report.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reasonkit.backends.options import BackendOptions
from reasonkit.cola.grammar import format_path

HELP_RUN = "run directory of `reasonkit cola search` (the predictor goes to RUN/predictor)"


@dataclass
class TrainPredictorConfig(BackendOptions):
    """Train a question -> layer path predictor on a search run: reasonkit cola train-predictor RUN"""

    run: str = field(default="", metadata={"help": HELP_RUN})
    model: str = field(
        default="", metadata={"help": "the model (default: the one the search ran, from RUN/run.json)"}
    )
    candidates: int = field(default=16, metadata={"help": "candidate paths (the default path included)"})
    length_weight: float = field(
        default=0.1,
        metadata={
            "help": "the choice maximises p(correct) - length_weight * len(path)/layers (0: accuracy only)"
        },
    )
    heldout: int = field(
        default=200,
        metadata={"help": "held-out problems (the benchmark's next ones after the searched ones)"},
    )
    hidden: int = field(default=64, metadata={"help": "hidden units of the predictor's MLP"})
    epochs: int = field(default=400, metadata={"help": "full-batch training epochs"})
    learning_rate: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-3, metadata={"help": "Adam weight decay"})
    batch_size: int = field(default=64, metadata={"help": "problems per model call"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.run:
            raise ValueError("give the search run directory: reasonkit cola train-predictor RUN")
        for name in ("candidates", "heldout", "hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.candidates < 2 or self.length_weight < 0:
            raise ValueError("--candidates must be >= 2 and --length-weight >= 0")


def choose_candidates(records: Sequence[Any], default: tuple[int, ...], k: int) -> list[tuple[int, ...]]:
    """The default path and the k - 1 paths scored correct for the most problems (ties: shorter first)."""
    counts = Counter(path for r in records for path, o in r.scored.items() if o.correct and path != default)
    ranked = sorted(counts, key=lambda p: (-counts[p], len(p), p))
    return [default, *ranked[: k - 1]]


def train_predictor(config: TrainPredictorConfig, backend: Any = None) -> dict[str, Any]:
    """Train, evaluate on held-out problems, save; returns the evaluation (module docstring)."""
    from reasonkit.cola.report import write_run_report
    from reasonkit.cola.search import load_run, select_problems
    from reasonkit.rundir import claim

    run = Path(config.run)
    search, records = load_run(run)
    searched = {r.problem_id for r in records}
    problems = select_problems(_without_limit(search))
    train = [p for p in problems if p.id in searched]
    last = max((i for i, p in enumerate(problems) if p.id in searched), default=-1)
    heldout = [p for p in problems[last + 1 :] if p.id not in searched][: config.heldout]
    if len(train) < 2 or not heldout:
        raise ValueError(
            f"{run} has {len(train)} searched problems and the benchmark {len(heldout)} more to hold out; the "
            "predictor needs at least 2 to train on and 1 to test on (search fewer problems, or lower --heldout)"
        )
    backend = backend if backend is not None else config.load(config.model or search.model)
    with claim(run, {}, what="CoLa search"):
        evaluation = _train_and_evaluate(config, search, backend, train, heldout, records, run)
        write_run_report(run)
    return evaluation


def _without_limit(search: Any) -> Any:
    import dataclasses

    return dataclasses.replace(search, limit=None)


def _train_and_evaluate(
    config: TrainPredictorConfig,
    search: Any,
    backend: Any,
    train: Sequence[Any],
    heldout: Sequence[Any],
    records: Sequence[Any],
    run: Path,
) -> dict[str, Any]:
    from reasonkit.cola.predictor import PathPredictor, fit, prompt_features
    from reasonkit.cola.scoring import PathScorer
    from reasonkit.cola.stats import share
    from reasonkit.cola.table import RewardTable
    from reasonkit.rundir import JsonlAppender, atomic_write_json

    table = RewardTable(run / "evaluations.jsonl")
    scorer = PathScorer(
        backend,
        [*train, *heldout],
        call=search.call,
        max_new_tokens=search.max_new_tokens,
        budget_factor=search.budget_factor,
        batch_size=config.batch_size,
        table=table,
    )
    layers = scorer.num_layers
    candidates = choose_candidates(records, scorer.default_path, config.candidates)
    train_rows = list(range(len(train)))
    heldout_rows = list(range(len(train), len(train) + len(heldout)))
    labels = torch.tensor([[o.correct for o in scorer.score(c, train_rows)] for c in candidates]).T.float()
    features = prompt_features(scorer.lm, scorer.prompts)
    network = fit(
        features[train_rows],
        labels,
        hidden=config.hidden,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        seed=search.seed,
    )
    info = {"base_model": search.model, "base_digest": getattr(backend, "weights_digest", None),
            "call": search.call, "trained_on": len(train), "run": str(run)}  # fmt: skip
    predictor = PathPredictor(candidates, layers, network, config.length_weight, info)
    chosen = predictor.choose(features[heldout_rows])
    # the best single path, chosen on the training problems by the same utility
    utility = labels.mean(0) - config.length_weight * torch.tensor([len(c) for c in candidates]) / layers
    fixed = candidates[int(utility.argmax())]
    picked: dict[tuple[int, ...], list[int]] = {}
    for row, path in zip(heldout_rows, chosen):
        picked.setdefault(path, []).append(row)
    outcome: dict[int, Any] = {}
    for path, rows in picked.items():
        outcome.update(zip(rows, scorer.score(path, rows)))
    default = dict(zip(heldout_rows, scorer.score(scorer.default_path, heldout_rows)))
    fixed_outcome = dict(zip(heldout_rows, scorer.score(fixed, heldout_rows)))
    table.close()
    out = run / "predictor"
    predictor.save(out)
    with JsonlAppender(out / "choices.jsonl.tmp") as choices:
        for row, path in zip(heldout_rows, chosen):
            choices.write({"problem_id": scorer.problems[row].id, "path": format_path(path),
                           "correct": outcome[row].correct, "default_correct": default[row].correct})  # fmt: skip
    (out / "choices.jsonl.tmp").replace(out / "choices.jsonl")
    n = len(heldout_rows)
    wins = sum(outcome[r].correct and not default[r].correct for r in heldout_rows)
    losses = sum(default[r].correct and not outcome[r].correct for r in heldout_rows)
    table_rows = {
        f"default path ({layers} layers)": _row(default, heldout_rows, layers, share),
        "predictor (one path per question)": _row(outcome, heldout_rows, [len(p) for p in chosen], share),
        f"best single candidate on the training problems ({format_path(fixed)})": _row(
            fixed_outcome, heldout_rows, len(fixed), share
        ),
    }
    evaluation = {
        "heldout": n,
        "candidates": len(candidates),
        "candidate_paths": [format_path(c) for c in candidates],
        "trained_on": len(train),
        "train_label_accuracy": {
            format_path(c): round(float(v), 4) for c, v in zip(candidates, labels.mean(0))
        },
        "length_weight": config.length_weight,
        "rows": table_rows,
        "paired": {"predictor_right_default_wrong": wins, "default_right_predictor_wrong": losses},
        "distinct_paths_chosen": len(picked),
        "verdict": (
            f"On {n} held-out problems the predictor is right where the default path is wrong {wins} times and "
            f"wrong where it is right {losses} times, running {table_rows['predictor (one path per question)']['mean_layers']} "
            f"layers on average instead of {layers}."
        ),
    }
    atomic_write_json(out / "evaluation.json", evaluation)
    return evaluation


def _row(
    outcomes: dict[int, Any], rows: Sequence[int], layers: int | Sequence[int], share: Any
) -> dict[str, Any]:
    lengths = [layers] * len(rows) if isinstance(layers, int) else list(layers)
    return {
        "accuracy": share(sum(outcomes[r].correct for r in rows), len(rows)),
        "mean_layers": round(sum(lengths) / len(lengths), 3),
    }


def train_predictor_command(argv: Sequence[str]) -> int:
    from reasonkit.config import parse_config

    args = list(argv)
    if args and not args[0].startswith("-"):
        args = ["--run", *args]  # the run directory may come first, without its flag
    config = parse_config(TrainPredictorConfig, args, prog="reasonkit cola train-predictor")
    evaluation = train_predictor(config)
    print(evaluation["verdict"])
    print(
        f"predictor -> {Path(config.run) / 'predictor'}; use it as --model cola:{Path(config.run) / 'predictor'}"
    )
    return 0
