"""Think-at-Hard in the white-box decode loop: deeper passes before each token is chosen.

The loop (:func:`reasonkit.models.whitebox.decode`) runs the first pass — the prompt at step 0, one
column per row afterwards — and asks :meth:`TaHHooks.refine` for the logits to choose from. The hooks
route the pass's eligible tokens (the prompt's last column and every generated one; every prompt
column too for "always" models), run the deeper passes over only the rows that iterate (their deeper
cache slots grow, no other row's), and return each row's deepest accumulated logits. Finished rows
never iterate. Each generated token's depth is recorded and handed back per row (``Completion.meta``
-> ``Step.meta["tah"]``): ``{"depths": [1, 1, 2, ...], "mean_depth": ..., "iterated": ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reasonkit.models.whitebox import DecodeHooks, DecodeStep, WhiteBoxLM
from reasonkit.tah.model import TaHModel
from reasonkit.tah.passes import dense_logits, first_pass, run_deeper, token_depths


class TaHHooks(DecodeHooks):
    """Decode hooks over a :class:`TaHModel` (its ``lm`` is the loop's model)."""

    def __init__(self, model: TaHModel) -> None:
        self.model = model
        self.hidden_states = model.needs_features()
        self._depths: list[torch.Tensor] = []  # per step: (B,) depth of the token chosen there

    def refine(self, lm: WhiteBoxLM, step: DecodeStep) -> torch.Tensor:
        model = self.model
        out = step.output
        assert out.cache is not None
        cache = out.cache
        B, T = out.hidden.shape[:2]
        if step.index == 0:
            self._depths = []
        first_column = cache.columns - T
        columns = first_column + torch.arange(T, device=out.hidden.device).expand(B, T)
        valid = step.attention_mask.bool()
        eligible = torch.zeros(B, T, dtype=torch.bool, device=valid.device)
        if model.config.eligible == "all":
            eligible |= valid
        eligible[:, -1] = True
        eligible &= ~step.finished[:, None]
        with torch.no_grad():
            # a decode step's logits are the loop's own (same head, same column); the prompt's are all columns'
            known = step.logits.to(lm.dtype)[:, None] if T == 1 else None
            first = first_pass(model, out, columns, valid, known)
            passes = run_deeper(model, first, cache, eligible, model.router())
        if len(passes) == 1:
            self._depths.append(torch.ones(B, dtype=torch.long))
            return step.logits
        self._depths.append(token_depths(passes, B, T, first_column)[:, -1].cpu())
        # each row's last column (the prompt's step covers every prompt column)
        return dense_logits(passes, B, T, first_column)[:, -1].float()

    def row_meta(self, row: int, generated: int) -> dict[str, Any]:
        depths = [int(d[row]) for d in self._depths[:generated]]
        if not depths:
            return {"tah": {"depths": [], "mean_depth": None, "iterated": 0}}
        iterated = sum(1 for d in depths if d > 1)
        return {"tah": {"depths": depths, "mean_depth": sum(depths) / len(depths), "iterated": iterated}}

    def score_logits(
        self,
        lm: WhiteBoxLM,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        path: Sequence[int] | None,
        first_scored: int,
    ) -> torch.Tensor:
        """Teacher-forced Think-at-Hard logits: positions from ``first_scored`` on may iterate (they
        predict continuation tokens), the prefix's inner positions never (as in decoding)."""
        model = self.model
        eligible = attention_mask.bool().clone()
        if model.config.eligible != "all":
            eligible[:, :first_scored] = False
        with torch.no_grad():
            passes = model.run(ids, attention_mask, eligible)
        return dense_logits(passes, ids.shape[0], ids.shape[1])
