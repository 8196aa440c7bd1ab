"""The addition task of arXiv 2503.01906: data, fixed splits and batches for both variants.

Splits (all fixed by ``split_seed``; R = ``addend_range``, E = ``extrapolation_range``):

- ``train``: a random ``1 - holdout_fraction`` of the pairs (a, b) with a, b in [0, R).
- ``interpolation``: the held-out pairs of [0, R)² — both addends seen, never this combination.
- ``extrapolation``: a in [R, E), b in [0, R) — the first addend and the sum lie beyond anything
  trained on (sums up to E + R - 2 against a training maximum of 2R - 2).
- ``extrapolation_b``: b in [R, E), a in [0, E) — the second addend lies beyond the range, so a
  model must apply more increments than it ever did in training. Reported beside the three splits
  the study asks for, because a claim of extrapolation should say along which axis it holds.

Variant "onehot": each addend is a one-hot code on a number line of ``code_size``. Variant
"images": each addend is an 8×8 handwritten digit from scikit-learn's bundled UCI digits (no
download), so R and E are at most 10; train-split items use training images, evaluation splits use
held-out images (70/30 per digit), ``eval_draws`` image pairs per (a, b).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from reasonkit.workspaces.number_modules import number_code

Variant = Literal["onehot", "images"]
VARIANTS: tuple[str, ...] = ("onehot", "images")
SPLITS: tuple[str, ...] = ("train", "interpolation", "extrapolation", "extrapolation_b")


def make_pairs(
    addend_range: int, extrapolation_range: int, holdout_fraction: float, split_seed: int
) -> dict[str, Tensor]:
    """The four splits as (P, 2) long tensors of (a, b) pairs; see the module docstring."""
    if addend_range < 2 or extrapolation_range <= addend_range:
        raise ValueError(
            f"need 2 <= addend_range < extrapolation_range, got {addend_range} and {extrapolation_range}"
        )
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    inside = torch.cartesian_prod(torch.arange(addend_range), torch.arange(addend_range))  # (R², 2)
    order = torch.randperm(len(inside), generator=torch.Generator().manual_seed(split_seed))
    n_held = max(1, round(holdout_fraction * len(inside)))
    held, kept = order[:n_held].sort().values, order[n_held:].sort().values
    beyond = torch.arange(addend_range, extrapolation_range)
    return {
        "train": inside[kept],
        "interpolation": inside[held],
        "extrapolation": torch.cartesian_prod(beyond, torch.arange(addend_range)),
        "extrapolation_b": torch.cartesian_prod(torch.arange(extrapolation_range), beyond),
    }


@dataclass(frozen=True)
class DigitPool:
    """scikit-learn's 8×8 digits split per class into training and held-out images, scaled to [0, 1]."""

    train: tuple[Tensor, ...]  # train[d]: (n_d, 64) images of digit d
    test: tuple[Tensor, ...]

    @classmethod
    def load(cls, split_seed: int, train_fraction: float = 0.7) -> DigitPool:
        from sklearn.datasets import load_digits

        data = load_digits()
        images = torch.tensor(data.data, dtype=torch.float32) / 16.0  # (1797, 64)
        labels = torch.tensor(data.target)
        generator = torch.Generator().manual_seed(split_seed + 1)
        train, test = [], []
        for digit in range(10):
            rows = (labels == digit).nonzero().flatten()
            rows = rows[torch.randperm(len(rows), generator=generator)]
            cut = int(train_fraction * len(rows))
            train.append(images[rows[:cut]])
            test.append(images[rows[cut:]])
        return cls(tuple(train), tuple(test))

    def labelled(self, part: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """All images of one part with their digit labels: (n, 64), (n,)."""
        pool = self.train if part == "train" else self.test
        return torch.cat(pool), torch.cat([torch.full((len(x),), d) for d, x in enumerate(pool)])

    def sample(self, digits: Tensor, part: Literal["train", "test"], generator: torch.Generator) -> Tensor:
        """One random image of each digit in ``digits`` (...) from ``part``: (..., 64)."""
        pool = self.train if part == "train" else self.test
        flat = digits.flatten()
        out = torch.empty(len(flat), 64)
        for digit in range(10):
            rows = (flat == digit).nonzero().flatten()
            if rows.numel():
                pick = torch.randint(len(pool[digit]), (len(rows),), generator=generator)
                out[rows] = pool[digit][pick]
        return out.reshape(*digits.shape, 64)


class AdditionTask:
    """Batches and fixed evaluation sets of (stimulus, target) for one variant.

    stimulus: (B, 2, code_size) one-hot codes ("onehot") or (B, 2, 64) images ("images");
    target: (B,) the sum.
    """

    def __init__(
        self,
        variant: Variant,
        pairs: dict[str, Tensor],
        code_size: int,
        *,
        digits: DigitPool | None = None,
        eval_draws: int = 10,
        split_seed: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "images" and digits is None:
            raise ValueError("the images variant needs a DigitPool (DigitPool.load(split_seed))")
        largest = max(int(p.sum(-1).max()) for p in pairs.values())
        if largest >= code_size:
            raise ValueError(
                f"code_size {code_size} cannot hold the largest sum {largest}; use >= {largest + 1}"
            )
        if variant == "images" and max(int(p.max()) for p in pairs.values()) > 9:
            raise ValueError("the images variant has single digits only: extrapolation_range must be <= 10")
        self.variant, self.pairs, self.code_size = variant, pairs, code_size
        self.digits, self.eval_draws, self.split_seed = digits, eval_draws, split_seed
        self._eval_cache: dict[str, tuple[Tensor, Tensor]] = {}

    def stimulus(self, pairs: Tensor, part: Literal["train", "test"], generator: torch.Generator) -> Tensor:
        if self.variant == "onehot":
            return number_code(pairs, self.code_size)  # (B, 2, N)
        assert self.digits is not None
        return self.digits.sample(pairs, part, generator)  # (B, 2, 64)

    def batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A training batch: pairs drawn uniformly from the train split (training images)."""
        train = self.pairs["train"]
        pairs = train[torch.randint(len(train), (size,), generator=generator)]  # (B, 2)
        return self.stimulus(pairs, "train", generator), pairs.sum(-1)

    def eval_pairs(self, split: str) -> Tensor:
        """(P, 2) the (a, b) pair behind every item of ``eval_set(split)``."""
        if split not in self.pairs:
            raise ValueError(f"unknown split {split!r}; splits: {sorted(self.pairs)}")
        pairs = self.pairs[split]
        return pairs.repeat_interleave(self.eval_draws, dim=0) if self.variant == "images" else pairs

    def swap_in_train(self, split: str) -> Tensor:
        """(P,) bool: whether the commuted pair (b, a) of each evaluation item is a training pair.

        A sequence model that learns only that a + b = b + a solves exactly these held-out pairs.
        """
        train = {tuple(p) for p in self.pairs["train"].tolist()}
        return torch.tensor([(b, a) in train for a, b in self.eval_pairs(split).tolist()], dtype=torch.bool)

    def eval_set(self, split: str) -> tuple[Tensor, Tensor]:
        """The fixed evaluation set of ``split``: every pair (× ``eval_draws`` image pairs for images)."""
        if split not in self._eval_cache:
            pairs = self.eval_pairs(split)
            part: Literal["train", "test"] = "train" if split == "train" else "test"
            generator = torch.Generator().manual_seed(self.split_seed + 2 + SPLITS.index(split))
            self._eval_cache[split] = (self.stimulus(pairs, part, generator), pairs.sum(-1))
        return self._eval_cache[split]
