"""The training callback of ``reasonkit train-navigator``: progress bar, periodic evaluation, checkpoints.

An SB3 ``BaseCallback`` that counts finished episodes (the paper measures training in episodes, not
env steps), shows them on a progress bar (:func:`reasonkit.progress.progress_bar`: warnings and log
records print above it), and every ``eval_every`` episodes calls ``checkpoint`` — which evaluates
the greedy navigator on the validation problems and writes the run directory — then stops training
at ``total`` episodes.

The bar advances once per vectorised env step by the number of episodes that step finished (about
ten of 50 parallel episodes at the start): advancing it one episode at a time made tqdm estimate the
rate from the first episode alone over the whole first step, and the first ETA read hours.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class TrainingMonitor(BaseCallback):
    """Counts episodes, records each one, checkpoints every ``eval_every`` and stops at ``total``."""

    def __init__(
        self,
        *,
        total: int,
        done_before: int,
        eval_every: int,
        checkpoint: Callable[[int, list[dict[str, Any]], float], dict[str, Any]],
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.total = total
        self.episodes = done_before
        self.eval_every = eval_every
        self.checkpoint = checkpoint
        self.progress = progress
        self.pending: list[dict[str, Any]] = []  # episodes since the last checkpoint
        self.recent: deque[bool] = deque(maxlen=100)
        self.last_eval: dict[str, Any] = {}
        self.bar: Any = None

    def _on_training_start(self) -> None:
        from reasonkit.progress import progress_bar

        # Created here, after the backend, the env's first states and the checkpoint at episode 0:
        # the rate is measured over training steps only.
        self.bar = progress_bar(
            total=self.total,
            initial=self.episodes,
            enabled=self.progress,
            desc="train-navigator",
            unit="episode",
        )

    def _on_step(self) -> bool:
        shown = self.episodes
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if not done or self.episodes >= self.total:
                continue
            self.episodes += 1
            self.recent.append(bool(info.get("correct")))
            self.pending.append(
                {
                    "episode": self.episodes,
                    "problem_id": info.get("problem_id"),
                    "blocks": info.get("blocks"),
                    "ended_by": info.get("ended_by"),
                    "correct": bool(info.get("correct")),
                    "return": round(float(info.get("episode", {}).get("r", 0.0)), 6),
                    "tokens": info.get("tokens"),
                }
            )
            if self.episodes % self.eval_every == 0 or self.episodes == self.total:
                self.bar.update(self.episodes - shown)  # the checkpoint's time goes to the next update
                shown = self.episodes
                self._checkpoint()
        if self.episodes > shown:
            self.bar.update(self.episodes - shown)  # one update per env step: a representative rate
        return self.episodes < self.total

    def _checkpoint(self) -> None:
        success = sum(self.recent) / len(self.recent) if self.recent else 0.0
        self.last_eval = self.checkpoint(self.episodes, self.pending, success)
        self.pending = []
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix(
            eps=f"{getattr(self.model, 'exploration_rate', 0.0):.3f}",
            train=f"{sum(self.recent) / max(1, len(self.recent)):.2f}",
            val=f"{self.last_eval.get('accuracy', float('nan')):.3f}",
            refresh=False,
        )

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
