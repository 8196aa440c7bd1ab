"""``reasonkit cola SUBCOMMAND``: chain-of-layers search, its path predictor and its report.

    reasonkit cola search --model builtin --bench arith --limit 200 --out runs/cola
    reasonkit cola train-predictor runs/cola
    reasonkit cola report runs/cola [runs/cola-skip runs/cola-repeat]   # several: an ablation table

The controls, the exhaustive recall and the speed benchmark are experiment runners of the evals layer:
``reasonkit eval cola-controls DIR``, ``reasonkit eval cola-recall DIR``, ``python -m
reasonkit.evals.bench_cola``. A found or predicted path runs anywhere a model does:
``--model layers:0,1,1,2-7@builtin`` or ``--model cola:runs/cola/predictor``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "search": (
        "reasonkit.cola.search:search_command",
        "MCTS over layer paths for every problem of a benchmark",
    ),
    "train-predictor": (
        "reasonkit.cola.train_predictor:train_predictor_command",
        "train a question -> path predictor on a search run and evaluate it on held-out problems",
    ),
    "report": ("reasonkit.cola.report:report_command", "rebuild a run's report.md (several runs: one table)"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: reasonkit cola <subcommand> [options]   (reasonkit cola <subcommand> --help)", ""]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def cola_command(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        print(f"reasonkit cola: unknown subcommand {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function = entry[0].split(":")
    return int(getattr(importlib.import_module(module_name), function)(args[1:]) or 0)
