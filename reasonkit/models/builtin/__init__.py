"""The built-in model: a small GatedLM trained on the arith task, shipped in ``reasonkit/models/zoo/builtin``.

``load_backend("builtin")`` loads the shipped checkpoint; this package makes it:

* :mod:`.tokenizer` — the character-level tokenizer (compact-pack control tokens as single tokens);
* :mod:`.data` — training pairs of every block task as length-bucketed token batches, built by
  DataLoader workers;
* :mod:`.train` — ``reasonkit train-lm`` (config: :class:`~.config.TrainLMConfig`), resumable;
* :mod:`.checkpoint` — model construction, checkpoints, the exported model directory.

Its evaluation on every block task — CoT accuracy by number of operations, refine repair rate,
self-evaluation agreement — runs models through backends and strategies, so it lives with the other
runners: ``reasonkit eval lm --model DIR`` (:mod:`reasonkit.evals.builtin_lm`).

docs/builtin-model.md has the recipe, the measured quality and the decisions behind them.
"""

from __future__ import annotations

from reasonkit.models.builtin.config import TrainLMConfig
from reasonkit.models.builtin.tokenizer import build_tokenizer

__all__ = ["TrainLMConfig", "build_tokenizer", "train_lm", "train_lm_command"]


def __getattr__(name: str) -> object:
    # the trainer pulls in the data pipeline: load it on first use
    if name in ("train_lm", "train_lm_command"):
        from reasonkit.models.builtin import train

        return getattr(train, name)
    raise AttributeError(f"module 'reasonkit.models.builtin' has no attribute {name!r}")
