"""``TaHModel``: a white-box LM with Think-at-Hard's adapters and decider, its losses and its directory.

One ``nn.Module`` owns the trainable parts (the backbone with its LoRA adapters, the decider), so
accelerate/DDP wrap it once and its ``forward(batch)`` returns the loss of the stage being trained:

- stage 1 (``stage="backbone"``): oracle depths route tokens (hard tokens take a second pass); next-
  token cross-entropy on each token's final accumulated logits, averaged over target tokens. Base
  weights train too, as the reference's step 1 (tah_model.py:385-395).
- stage 2 (``stage="decider"``): backbone and adapters frozen; the decider learns "the oracle sends
  this token on" from the first pass's features with weighted BCE (loss.py:89-245; with two passes
  only the first decision is supervised, ``skip_last_iter``).

A trained model is a directory (:meth:`TaHModel.save`): ``tah.json`` (the :class:`TaHConfig`),
``model/`` (the backbone, loadable by itself), ``lora/`` and ``decider/`` (safetensors + JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reasonkit.models.whitebox import WhiteBoxLM
from reasonkit.tah.config import TaHConfig
from reasonkit.tah.decider import IterationDecider
from reasonkit.tah.lora import base_state, inject_lora, load_lora, save_lora
from reasonkit.tah.passes import Pass, Router, first_pass, run_deeper

IGNORE = -100
FORMAT = "reasonkit-tah"
CONFIG_FILE = "tah.json"


class TaHModel(nn.Module):
    """The backbone (``lm.model``), its LoRA layers and the decider, run as Think-at-Hard."""

    def __init__(
        self, lm: WhiteBoxLM, config: TaHConfig, decider: IterationDecider | None = None, lora: bool = True
    ) -> None:
        super().__init__()
        self.lm = lm
        self.config = config
        self.backbone = lm.model
        self.decider = decider
        self.lora_layers: list[Any] = []
        if config.lora and config.max_depth > 1 and lora:
            self.lora_layers = inject_lora(lm.model, config.lora_r, config.lora_alpha, config.lora_dropout)
        self.decider_layers = config.decider.resolved_layers(lm.num_layers)

    def new_decider(self) -> IterationDecider:
        spec = self.config.decider
        k = min(self.config.top_k, self.lm.vocab_size)
        decider = IterationDecider(
            self.lm.hidden_size,
            self.decider_layers,
            k,
            spec.resolved_hidden(self.lm.hidden_size),
            spec.blocks,
            spec.expansion,
            spec.dropout,
        )
        return decider.to(device=self.lm.device)

    # ---- routing --------------------------------------------------------------------------------
    def router(self, route: str | None = None, oracle: torch.Tensor | None = None) -> Router:
        """``route`` (default the config's): decider | oracle (``oracle`` (B, T) depths) | always | never."""
        route = route or self.config.route
        if route == "always":
            return lambda p: torch.ones_like(p.valid)
        if route == "never" or self.config.max_depth == 1:
            return lambda p: torch.zeros_like(p.valid)
        if route == "oracle":
            if oracle is None:
                raise ValueError("route 'oracle' needs oracle depths (labels); it exists for training only")
            return lambda p: oracle[p.rows[:, None], p.columns] > p.depth + 1
        if self.decider is None:
            raise ValueError(
                "this Think-at-Hard model has no decider (train it with reasonkit train-tah, or route tokens "
                "with route='always', 'never' or 'oracle')"
            )
        decider, threshold = self.decider, self.config.threshold

        def by_decider(p: Pass) -> torch.Tensor:
            p.decider_logits = decider(p.hidden_states, p.logits).float()
            return torch.sigmoid(p.decider_logits) > threshold

        return by_decider

    def needs_features(self, route: str | None = None) -> tuple[int, ...]:
        """Hidden states the first pass must return for ``route``."""
        return (
            self.decider_layers
            if (route or self.config.route) == "decider" and self.config.max_depth > 1
            else ()
        )

    # ---- the full-sequence forward ----------------------------------------------------------------
    def run(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        eligible: torch.Tensor,
        route: str | None = None,
        oracle: torch.Tensor | None = None,
    ) -> list[Pass]:
        """Every pass over a whole batch (B, T) of token ids; ``eligible`` (B, T) positions may iterate."""
        lm = self.lm
        cache = lm.new_cache(ids.shape[0])
        out = lm.forward(
            lm.embed(ids),
            attention_mask=attention_mask,
            cache=cache,
            hidden_states=self.needs_features(route),
        )
        B, T = ids.shape
        columns = torch.arange(T, device=ids.device).expand(B, T)
        valid = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        first = first_pass(self, out, columns, valid)
        return run_deeper(self, first, cache, eligible, self.router(route, oracle))

    def eligible(self, targets: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T) positions that may iterate: those predicting a target token, or every real one."""
        if self.config.eligible == "all":
            return (
                torch.ones_like(targets, dtype=torch.bool)
                if attention_mask is None
                else attention_mask.bool()
            )
        return targets != IGNORE

    # ---- losses ---------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], stage: str = "backbone") -> dict[str, torch.Tensor]:
        """``batch``: right-padded input_ids (B, T), targets (B, T) (token t+1 at t, IGNORE off target),
        optional attention_mask and oracle (B, T) depths. Returns ``loss`` plus summed counts."""
        if stage == "decider":
            return self.decider_loss(batch)
        ids, targets = batch["input_ids"], batch["targets"]
        mask = batch.get("attention_mask")
        route = "oracle" if self.config.route == "decider" else self.config.route
        # right-padded batches: no real token looks at a pad, so the passes run unmasked (faster
        # kernels); the mask only keeps pads from iterating
        passes = self.run(ids, None, self.eligible(targets, mask), route, batch.get("oracle"))
        loss_sum = ids.new_zeros((), dtype=torch.float32)
        correct = ids.new_zeros(())
        iterated = ids.new_zeros(())
        for p in passes:
            done = p.valid if p.continues is None else p.valid & ~p.continues
            tgt = targets[p.rows[:, None], p.columns]
            scored = done & (tgt != IGNORE)
            logits = p.logits[scored].float()
            loss_sum = loss_sum + F.cross_entropy(logits, tgt[scored], reduction="sum")
            correct = correct + (logits.argmax(-1) == tgt[scored]).sum()
            if p.depth > 0:
                iterated = iterated + (p.valid & (tgt != IGNORE)).sum()
        tokens = (targets != IGNORE).sum()
        return {
            "loss": loss_sum / tokens.clamp(min=1),
            "loss_sum": loss_sum,
            "correct": correct,
            "tokens": tokens,
            "iterated": iterated,
        }

    def decider_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted BCE of the decider on the first pass's features (backbone frozen, no grad through it)."""
        if self.decider is None:
            raise ValueError("stage 'decider' needs a decider: create one with new_decider()")
        ids, targets, oracle = batch["input_ids"], batch["targets"], batch["oracle"]
        mask = batch.get("attention_mask")
        with torch.no_grad():  # right-padded: unmasked, as in stage 1
            out = self.lm.forward(self.lm.embed(ids), hidden_states=self.decider_layers, use_cache=False)
            logits = self.lm.logits(out.hidden)
        scored = self.eligible(targets, mask)
        predicted = self.decider({i: h[scored] for i, h in out.hidden_states.items()}, logits[scored]).float()
        hard = (oracle[scored] > 1).float()
        loss_sum = F.binary_cross_entropy_with_logits(
            predicted, hard, pos_weight=batch["pos_weight"], reduction="sum"
        )
        fires = torch.sigmoid(predicted.detach()) > self.config.threshold
        return {
            "loss": loss_sum / scored.sum().clamp(min=1),
            "loss_sum": loss_sum,
            "tokens": scored.sum(),
            "positives": hard.sum(),
            "fires": fires.sum(),
            "true_positives": (fires & (hard > 0)).sum(),
            "agree": (fires == (hard > 0)).sum(),
        }

    # ---- files ----------------------------------------------------------------------------------
    def save(
        self, directory: str | Path, card: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> Path:
        """Write the model directory (see the module docstring); ``card`` becomes model/reasonkit.json."""
        directory = Path(directory)
        (directory / "model").mkdir(parents=True, exist_ok=True)
        from reasonkit.progress import quiet_transformers_bars

        with quiet_transformers_bars():  # its "Writing model shards" bar would break train-tah's log
            self.lm.model.save_pretrained(str(directory / "model"), state_dict=base_state(self.lm.model))
        if self.lm.tokenizer is not None:
            self.lm.tokenizer.save_pretrained(str(directory / "model"))
        if card is not None:
            (directory / "model" / "reasonkit.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
        cfg = self.config
        if self.lora_layers:
            save_lora(self.lm.model, directory / "lora", cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
        if self.decider is not None:
            self.decider.save(directory / "decider")
        record = {"format": FORMAT, "version": 1, "config": cfg.to_dict(), **(extra or {})}
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
        return directory

    @classmethod
    def from_directory(
        cls, lm: WhiteBoxLM, directory: str | Path, overrides: dict[str, Any] | None = None
    ) -> TaHModel:
        """The Think-at-Hard model saved in ``directory`` around ``lm`` (its ``model/``, already loaded)."""
        directory = Path(directory)
        config = read_config(directory, overrides)
        lora = (directory / "lora").is_dir()
        model = cls(lm, config, lora=False)
        if lora:
            model.lora_layers = load_lora(lm.model, directory / "lora")
        elif config.lora and config.max_depth > 1:
            raise FileNotFoundError(f"{directory}/lora is missing but {CONFIG_FILE} says the model uses LoRA")
        if (directory / "decider").is_dir():
            model.decider = IterationDecider.load(directory / "decider", lm.hidden_size).to(lm.device)
        elif config.route == "decider" and config.max_depth > 1:
            raise FileNotFoundError(
                f"{directory}/decider is missing but the model routes by decider; route it another way "
                f"('tah:{directory}#route=always') or train its decider (reasonkit train-tah)"
            )
        return model.eval()


def read_config(directory: Path, overrides: dict[str, Any] | None = None) -> TaHConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: a Think-at-Hard model is a directory written by reasonkit train-tah "
            "(tah.json, model/, lora/, decider/); pass that directory"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); rewrite it with reasonkit train-tah") from None
    if (
        not isinstance(record, dict)
        or record.get("format") != FORMAT
        or not isinstance(record.get("config"), dict)
    ):
        raise ValueError(f"{path} is not a Think-at-Hard record (format {FORMAT!r} with a config object)")
    return TaHConfig.from_dict({**record["config"], **(overrides or {})}, str(path))
