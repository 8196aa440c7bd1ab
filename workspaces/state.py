"""The global workspace: a small tensor every module reads and writes, plus an optional text side.

A workspace (arXiv 2503.01906) is the one shared medium between specialised modules: at every step a
controller lets one module write into it, and the new content is broadcast to every module and back
to the controller. Here it is a :class:`WorkspaceState`:

- ``vector`` (B, S, D): S slots of width D. Neural modules read and write it directly; it is also
  the only thing the controller sees.
- ``stimulus``: the external input for the batch (a tensor for digit pairs, a list of strings for
  questions). Modules that read the world (an Input module, an LLM step) read it; it never changes.
- ``text`` / ``history``: the symbolic side used by backend-driven modules (an LLM step, a
  calculator, a verifier). ``text[i]`` is the latest content of item i; ``history[i]`` lists every
  ``(module, text)`` written so far. Purely neural tasks leave both as ``None``.

Routing with hard gates sends each item to a different module, so states can be cut to a sub-batch
(:meth:`WorkspaceState.take`) and written back (:meth:`WorkspaceState.put`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

History = tuple[tuple[str, str], ...]


def take_batch(obj: Any, index: Tensor) -> Any:
    """Rows ``index`` of a batched object: a tensor, a list/tuple of items, or a dict of those."""
    if isinstance(obj, Tensor):
        return obj.index_select(0, index.to(obj.device))
    if isinstance(obj, (list, tuple)):
        return type(obj)(obj[i] for i in index.tolist())
    if isinstance(obj, dict):
        return {key: take_batch(value, index) for key, value in obj.items()}
    raise TypeError(
        f"cannot index a batch of type {type(obj).__name__}; a stimulus must be a tensor, a list/tuple "
        f"of per-item values, or a dict of those"
    )


def batch_size_of(obj: Any) -> int:
    """How many items a batched object holds (its first dimension)."""
    if isinstance(obj, Tensor):
        if obj.dim() == 0:
            raise ValueError("a stimulus tensor needs a batch dimension, got a 0-d tensor")
        return int(obj.shape[0])
    if isinstance(obj, (list, tuple)):
        return len(obj)
    if isinstance(obj, dict):
        sizes = {batch_size_of(value) for value in obj.values()}
        if len(sizes) != 1:
            raise ValueError(f"the stimulus dict mixes batch sizes {sorted(sizes)}; give every entry B rows")
        return sizes.pop()
    raise TypeError(f"cannot find the batch size of a {type(obj).__name__} stimulus")


@dataclass(frozen=True)
class WorkspaceState:
    """What is in the workspace for a batch of B items (see the module docstring)."""

    vector: Tensor  # (B, S, D)
    stimulus: Any
    text: tuple[str, ...] | None = None
    history: tuple[History, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vector, Tensor) or self.vector.dim() != 3:
            shape = tuple(self.vector.shape) if isinstance(self.vector, Tensor) else type(self.vector)
            raise ValueError(f"workspace vector must be a (batch, slots, width) tensor, got {shape}")
        batch = self.vector.shape[0]
        if batch_size_of(self.stimulus) != batch:
            raise ValueError(
                f"stimulus holds {batch_size_of(self.stimulus)} items but the workspace holds {batch}"
            )
        for name in ("text", "history"):
            value = getattr(self, name)
            if value is not None and len(value) != batch:
                raise ValueError(f"workspace {name} holds {len(value)} items but the vector holds {batch}")

    @classmethod
    def empty(
        cls, stimulus: Any, slots: int, width: int, *, with_text: bool = False, device: Any = None
    ) -> WorkspaceState:
        """A blank workspace (all zeros, no text) for ``stimulus``."""
        batch = batch_size_of(stimulus)
        if device is None and isinstance(stimulus, Tensor):
            device = stimulus.device
        vector = torch.zeros(batch, slots, width, device=device)  # (B, S, D)
        if not with_text:
            return cls(vector, stimulus)
        return cls(vector, stimulus, text=("",) * batch, history=((),) * batch)

    @property
    def batch_size(self) -> int:
        return int(self.vector.shape[0])

    def take(self, index: Tensor) -> WorkspaceState:
        """The sub-batch of items ``index`` (a 1-D long tensor)."""
        return WorkspaceState(
            vector=self.vector.index_select(0, index.to(self.vector.device)),
            stimulus=take_batch(self.stimulus, index),
            text=take_batch(self.text, index) if self.text is not None else None,
            history=take_batch(self.history, index) if self.history is not None else None,
        )

    def put(self, index: Tensor, part: WorkspaceState) -> WorkspaceState:
        """A copy of this state with items ``index`` replaced by ``part`` (as returned by :meth:`take`)."""
        vector = self.vector.index_copy(0, index.to(self.vector.device), part.vector)
        text, history = self.text, self.history
        rows = index.tolist()
        if text is not None and part.text is not None:
            merged = list(text)
            for row, item in zip(rows, part.text):
                merged[row] = item
            text = tuple(merged)
        if history is not None and part.history is not None:
            merged_history = list(history)
            for row, entries in zip(rows, part.history):
                merged_history[row] = entries
            history = tuple(merged_history)
        return WorkspaceState(vector, self.stimulus, text, history)

    def with_vector(self, vector: Tensor) -> WorkspaceState:
        return replace(self, vector=vector)

    def with_text(self, module: str, texts: Sequence[str], vector: Tensor) -> WorkspaceState:
        """Write ``texts`` (one per item) as ``module``'s output, with their encoding ``vector`` (B, S, D)."""
        if len(texts) != self.batch_size:
            raise ValueError(f"module {module!r} wrote {len(texts)} texts for a batch of {self.batch_size}")
        history = self.history if self.history is not None else ((),) * self.batch_size
        return WorkspaceState(
            vector=vector,
            stimulus=self.stimulus,
            text=tuple(texts),
            history=tuple((*h, (module, t)) for h, t in zip(history, texts)),
        )
