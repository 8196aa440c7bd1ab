"""The ``reasonkit`` command line: a table of subcommands, each a thin call into the library.

Each entry names a ``module:function`` that takes the remaining argv and returns an exit code; the
module is imported only when its command runs, so ``reasonkit --help`` answers at once. Commands
parse a config dataclass with :func:`reasonkit.config.parse_config` (flags or ``--config x.yaml``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    target: str  # "package.module:function"; the function takes argv and returns an exit code
    help: str


COMMANDS: dict[str, Command] = {
    "train-navigator": Command(
        "reasonkit.navigators.train:train_navigator_command",
        "train an RL-of-Thoughts navigator (default: the built-in model on arith, minutes on a CPU)",
    ),
    "train-lm": Command(
        "reasonkit.models.builtin.train:train_lm_command",
        "train the built-in GatedLM on the arith block tasks (reproduces the shipped checkpoint)",
    ),
    "train-tah": Command(
        "reasonkit.tah.train:train_tah_command",
        "train Think-at-Hard: latent second passes on hard tokens (default: the built-in model on arith-hard)",
    ),
    "eval": Command(
        "reasonkit.evals.runner:eval_command",
        "evaluate on a benchmark; eval compare DIR... (a table), eval navigator (navigator vs baselines), eval lm (block tasks)",
    ),
    "train-workspace": Command(
        "reasonkit.workspaces.command:train_workspace_command",
        "train the Global Workspace router and LSTM/Transformer baselines on addition (--variant onehot|images)",
    ),
    "serve": Command(
        "reasonkit.backends.server:serve_command",
        "serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions)",
    ),
    "solve": Command(
        "reasonkit.controller:solve_command", "solve one question with a strategy and print its trace"
    ),
    "train-hrpo": Command(
        "reasonkit.hrpo.train:train_hrpo_command",
        "train hybrid latent reasoning by RL (HRPO) or its GRPO control (default: the built-in model on arith)",
    ),
    "cola": Command(
        "reasonkit.cola.command:cola_command",
        "chain-of-layers search: cola search | train-predictor | report",
    ),
}


def _usage() -> str:
    width = max((len(name) for name in COMMANDS), default=0)
    lines = [
        "usage: reasonkit <command> [options]   (reasonkit <command> --help for its options)",
        "",
        "Orchestrate LLM reasoning at inference time and train the small controllers that do it.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from reasonkit import __version__

        print(f"reasonkit {__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"reasonkit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from reasonkit.hints import use_command_line_hints

    use_command_line_hints()  # errors name flags (--request-timeout), not Python arguments (timeout=)
    module_name, func_name = command.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except KeyboardInterrupt:
        print(
            "\nreasonkit: interrupted; run the same command again to resume where it stopped", file=sys.stderr
        )
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, ConnectionError) as exc:
        # Errors a user can cause end in one clear line, not a traceback (REASONKIT_DEBUG=1 shows it).
        import os

        if os.environ.get("REASONKIT_DEBUG"):
            raise
        print(f"reasonkit {name}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
