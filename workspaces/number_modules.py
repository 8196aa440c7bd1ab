"""Modules of the addition study (arXiv 2503.01906): Input → Increment (repeated) → Output.

Numbers live in the workspace as distributions over a number line 0..N-1 (a one-hot vector when
exact). The addition workspace has two slots: slot 0 is the running value, slot 1 holds the second
addend, which the controller reads to know how many increments to ask for.

Variant "onehot" (hand-designed modules): :class:`InputModule` copies the one-hot codes of both
addends into the workspace, :class:`ShiftIncrement` moves slot 0 one place up the number line,
:class:`Readout` reads slot 0 as the answer and halts.

Variant "images" (learned modules): :class:`DigitEncoder` turns an 8×8 digit image into a
distribution over digits (pretrained as a classifier; the representation module), and the
increment is learned from the addition objective alone: :class:`LearnedShiftIncrement` (a learned
distribution over shifts, applied the same way at every position of the number line — translation
equivariance is the prior that lets it work on numbers it never saw) or, as the ablation without
that prior, :class:`MLPIncrement`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reasonkit.workspaces.router import WorkspaceModule
from reasonkit.workspaces.state import WorkspaceState


def number_code(values: Tensor, size: int) -> Tensor:
    """One-hot codes (..., size) of integer ``values`` (...); every value must lie in [0, size)."""
    if values.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"number_code needs integer values, got dtype {values.dtype}")
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= size):
        raise ValueError(
            f"values must lie in [0, {size}) to fit the number line, got range "
            f"[{int(values.min())}, {int(values.max())}]; raise code_size"
        )
    return nn.functional.one_hot(values.long(), size).float()


def _replace_slot(vector: Tensor, slot: int, value: Tensor) -> Tensor:
    """``vector`` (B, S, D) with slot ``slot`` replaced by ``value`` (B, D), out of place for autograd."""
    slots = list(vector.unbind(1))
    slots[slot] = value
    return torch.stack(slots, dim=1)


class InputModule(WorkspaceModule):
    """Writes the encoded stimulus into the workspace: ``encoder(stimulus)`` must be (B, S, D).

    With no encoder the stimulus already is the (B, S, D) code (variant "onehot").
    """

    def __init__(self, encoder: nn.Module | None = None, name: str = "input") -> None:
        super().__init__()
        self.name = name
        self.encoder = encoder

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        code = state.stimulus if self.encoder is None else self.encoder(state.stimulus)
        if not isinstance(code, Tensor) or code.shape != state.vector.shape:
            shape = tuple(code.shape) if isinstance(code, Tensor) else type(code).__name__
            raise ValueError(
                f"input module {self.name!r} produced {shape}, expected {tuple(state.vector.shape)}"
            )
        return state.with_vector(code)


class ShiftIncrement(WorkspaceModule):
    """Hand-designed increment: slot ``slot`` moves one place up the number line (the top falls off)."""

    def __init__(self, slot: int = 0, name: str = "increment") -> None:
        super().__init__()
        self.name, self.slot = name, slot

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        value = state.vector[:, self.slot]  # (B, D)
        shifted = nn.functional.pad(value[:, :-1], (1, 0))  # (B, D): position n now holds n-1
        return state.with_vector(_replace_slot(state.vector, self.slot, shifted))


class LearnedShiftIncrement(WorkspaceModule):
    """Learned increment: a distribution over shifts in [-reach, reach], shared by every position.

    ``out[n] = sum_k w_k * in[n - k]`` with ``w = softmax(logits)``; it starts as a uniform blur and
    the addition objective alone has to teach it that an increment is the shift k = +1.
    """

    def __init__(self, slot: int = 0, reach: int = 2, name: str = "increment") -> None:
        super().__init__()
        if reach < 1:
            raise ValueError(f"reach must be >= 1, got {reach}")
        self.name, self.slot, self.reach = name, slot, reach
        self.shift_logits = nn.Parameter(torch.zeros(2 * reach + 1))  # shifts -reach..reach

    @property
    def shift_weights(self) -> Tensor:
        return torch.softmax(self.shift_logits, dim=0)  # (2R+1,) index i is shift i - reach

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        value = state.vector[:, self.slot]  # (B, D)
        padded = nn.functional.pad(value, (self.reach, self.reach))  # (B, D + 2R)
        windows = padded.unfold(1, 2 * self.reach + 1, 1)  # (B, D, 2R+1)
        # windows[:, n, j] = in[n - reach + j] = in[n - k] for shift k = reach - j, so flip the weights.
        out = windows @ self.shift_weights.flip(0)  # (B, D)
        return state.with_vector(_replace_slot(state.vector, self.slot, out))


class MLPIncrement(WorkspaceModule):
    """Ablation: an unconstrained learned increment (MLP on the number-line code, softmax output)."""

    def __init__(self, code_size: int, slot: int = 0, hidden: int = 64, name: str = "increment") -> None:
        super().__init__()
        self.name, self.slot = name, slot
        self.net = nn.Sequential(nn.Linear(code_size, hidden), nn.ReLU(), nn.Linear(hidden, code_size))

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        value = torch.softmax(self.net(state.vector[:, self.slot]), dim=-1)  # (B, D)
        return state.with_vector(_replace_slot(state.vector, self.slot, value))


class Readout(WorkspaceModule):
    """The Output module: halts and reads slot ``slot`` as log-probabilities over the number line.

    The code already is a distribution over numbers, so the readout is its logarithm, smoothed by
    ``floor`` so that a wrong one-hot answer costs about ``-log(floor)`` instead of infinity. It has
    no parameters, so it reads numbers never seen in training the same way; and a blurred code
    (an increment that only half moves the value) is penalised as the spread it is.
    """

    halts = True

    def __init__(self, slot: int = 0, floor: float = 1e-4, name: str = "output") -> None:
        super().__init__()
        if not 0 < floor < 1:
            raise ValueError(f"readout floor must be in (0, 1), got {floor}")
        self.name, self.slot, self.floor = name, slot, floor

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        return state

    def readout(self, state: WorkspaceState) -> Tensor:
        code = state.vector[:, self.slot].clamp_min(0) + self.floor  # (B, D)
        return code.log() - code.sum(-1, keepdim=True).log()  # (B, D)


class DigitEncoder(nn.Module):
    """The representation module: 8×8 digit images (..., 64) → digit distributions on a number line.

    An MLP classifier over the 10 digits, pretrained on digit labels and then frozen; its softmax is
    padded with zeros to ``code_size`` so that it lives on the same number line as sums.
    """

    def __init__(self, code_size: int, hidden: int = 64) -> None:
        super().__init__()
        if code_size < 10:
            raise ValueError(f"code_size must be >= 10 to hold the ten digits, got {code_size}")
        self.code_size = code_size
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def logits(self, images: Tensor) -> Tensor:
        if images.shape[-1] != 64:
            raise ValueError(f"digit images must be flattened 8×8 (last dim 64), got {tuple(images.shape)}")
        return self.net(images)  # (..., 10)

    def forward(self, images: Tensor) -> Tensor:
        probs = torch.softmax(self.logits(images), dim=-1)  # (..., 10)
        return nn.functional.pad(probs, (0, self.code_size - 10))  # (..., code_size)
