"""The three models of the addition study (arXiv 2503.01906) behind one small interface.

- :class:`WorkspaceAdder` ("gw"): the gated router over Input / Increment / Output modules; trained
  through the relaxed (or straight-through) Gumbel gate with the halting-mixture likelihood,
  evaluated with hard gates.
- :class:`SequenceAdder` ("lstm", "transformer"): a baseline sequence classifier over the two
  addends' codes, trained with cross-entropy on the sum.

For the images variant all three read the same frozen, pretrained :class:`DigitEncoder`
(:func:`train_digit_encoder`), so they differ only in what they do with the digits; its parameters
are reported apart from each model's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from reasonkit.workspaces.addition import DigitPool
from reasonkit.workspaces.baselines import LSTMAdder, TransformerAdder, count_parameters
from reasonkit.workspaces.config import WorkspaceConfig
from reasonkit.workspaces.gating import Controller
from reasonkit.workspaces.number_modules import (
    DigitEncoder,
    InputModule,
    LearnedShiftIncrement,
    MLPIncrement,
    Readout,
    ShiftIncrement,
)
from reasonkit.workspaces.router import GatedRouter, WorkspaceModule

#: Slot 0 holds the running value, slot 1 the second addend (how many increments to ask for).
VALUE_SLOT, INSTRUCTION_SLOT = 0, 1


class WorkspaceAdder(nn.Module):
    """The "gw" model: a :class:`GatedRouter` chaining Input → Increment × b → Output."""

    def __init__(self, router: GatedRouter, config: WorkspaceConfig) -> None:
        super().__init__()
        self.router, self.config = router, config

    def loss(self, stimulus: Tensor, target: Tensor, step: int, generator: torch.Generator) -> Tensor:
        cfg = self.config
        out = self.router(
            stimulus,
            "soft",
            tau=cfg.tau(step),
            straight_through=cfg.straight_through,
            timeout_credit=cfg.timeout_credit,
            max_steps=cfg.train_max_steps,
            generator=generator,
        )
        return out.loss(target)

    @torch.no_grad()
    def predict(self, stimulus: Tensor) -> Tensor:
        """(B,) the hard-routed answer, -1 where the router never halted."""
        return self.router(stimulus, "hard", max_steps=self.config.eval_max_steps).prediction

    def describe(self) -> dict[str, Any]:
        """What a learned increment learned: its distribution over shifts (+1 is an exact increment)."""
        increment = self.router.chain[1]
        if not isinstance(increment, LearnedShiftIncrement):
            return {}
        weights = increment.shift_weights.detach().tolist()
        return {
            "increment_shift_weights": {
                f"{k - increment.reach:+d}": round(w, 4) for k, w in enumerate(weights)
            }
        }


class SequenceAdder(nn.Module):
    """A baseline over the addends' codes: the stimulus itself (onehot) or the frozen encoder's output."""

    def __init__(self, net: nn.Module, encoder: DigitEncoder | None = None) -> None:
        super().__init__()
        self.net, self.encoder = net, encoder

    def _features(self, stimulus: Tensor) -> Tensor:
        return stimulus if self.encoder is None else self.encoder(stimulus)  # (B, 2, N)

    def loss(self, stimulus: Tensor, target: Tensor, step: int, generator: torch.Generator) -> Tensor:
        return nn.functional.cross_entropy(self.net(self._features(stimulus)), target)

    @torch.no_grad()
    def predict(self, stimulus: Tensor) -> Tensor:
        return self.net(self._features(stimulus)).argmax(-1)

    def describe(self) -> dict[str, Any]:
        return {}


AdderModel = WorkspaceAdder | SequenceAdder


def build_router(config: WorkspaceConfig, encoder: DigitEncoder | None = None) -> GatedRouter:
    """The addition router of the config's variant (``encoder`` is required for images)."""
    n = config.code_size
    assert n is not None and config.train_max_steps is not None
    increment: WorkspaceModule
    if config.variant == "onehot":
        increment = ShiftIncrement(slot=VALUE_SLOT)
        input_module = InputModule()
    else:
        if encoder is None:
            raise ValueError("the images router needs the pretrained DigitEncoder")
        input_module = InputModule(encoder)
        increment = (
            LearnedShiftIncrement(slot=VALUE_SLOT)
            if config.increment == "conv"
            else MLPIncrement(n, slot=VALUE_SLOT)
        )
    view = (INSTRUCTION_SLOT,) if config.controller_view == "instruction" else (VALUE_SLOT, INSTRUCTION_SLOT)
    controller = Controller(len(view) * n, 3, hidden=config.controller_hidden, cell=config.controller_cell)
    return GatedRouter(
        [input_module, increment, Readout(slot=VALUE_SLOT)],
        controller,
        slots=2,
        width=n,
        max_steps=config.train_max_steps,
        controller_view=view,
    )


def build_model(name: str, config: WorkspaceConfig, encoder: DigitEncoder | None = None) -> AdderModel:
    """One of "gw", "lstm", "transformer" for the config's variant; initialised from the global RNG."""
    n = config.code_size
    assert n is not None
    if config.variant == "images" and encoder is None:
        raise ValueError("the images variant needs the pretrained DigitEncoder")
    if name == "gw":
        return WorkspaceAdder(build_router(config, encoder), config)
    if name == "lstm":
        return SequenceAdder(LSTMAdder(n, n, embed=config.lstm_embed, hidden=config.lstm_hidden), encoder)
    if name == "transformer":
        net = TransformerAdder(
            n,
            n,
            d_model=config.transformer_dim,
            layers=config.transformer_layers,
            heads=config.transformer_heads,
        )
        return SequenceAdder(net, encoder)
    raise ValueError(f"unknown model {name!r}; choose among 'gw', 'lstm', 'transformer'")


def train_digit_encoder(
    pool: DigitPool, code_size: int, steps: int, seed: int, batch_size: int = 128, lr: float = 3e-3
) -> tuple[DigitEncoder, float]:
    """Pretrain the representation module on digit labels; returns it frozen and its held-out accuracy."""
    torch.manual_seed(seed)
    encoder = DigitEncoder(code_size)
    images, labels = pool.labelled("train")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        rows = torch.randint(len(images), (batch_size,), generator=generator)
        loss = nn.functional.cross_entropy(encoder.logits(images[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.requires_grad_(False)
    encoder.eval()
    test_images, test_labels = pool.labelled("test")
    with torch.no_grad():
        accuracy = (encoder.logits(test_images).argmax(-1) == test_labels).float().mean().item()
    return encoder, accuracy


@torch.no_grad()
def both_digits_read(encoder: DigitEncoder, images: Tensor, pairs: Tensor) -> float:
    """Fraction of items (B, 2, 64) whose two digits the encoder classifies right (a reference ceiling)."""
    return (encoder.logits(images).argmax(-1) == pairs).all(-1).float().mean().item()


def own_parameters(model: nn.Module) -> int:
    """Trainable parameters of a model, excluding the shared frozen digit encoder."""
    return count_parameters(model, trainable_only=True)
