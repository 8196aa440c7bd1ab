"""The path predictor: question -> one layer path, chosen without the answer key.

The search's accuracy is an oracle (it grades every path against the answer). To deploy a path a
model needs a rule that reads only the question. PoLar (the paper's follow-up) trains a predictor on
MCTS-found paths; this one is deliberately small:

- features: the frozen model's own final hidden states over the prompt on its default path, mean
  over the prompt's tokens and at its last token (2 x hidden) — no second encoder (PoLar uses a
  0.6B embedding model);
- candidates: a fixed set of paths (the default path always among them), chosen from a search run;
- model: an MLP that predicts, for each candidate, whether the model answers correctly under it
  (sigmoid outputs, trained with binary cross-entropy on every (problem, candidate) outcome);
- choice: the candidate maximising ``p(correct) - length_weight * len(path) / layers``.

Saved as ``predictor.safetensors`` (the MLP and the feature standardisation) plus ``predictor.json``
(candidates, base model, prompt call, sizes): no pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reasonkit.cola.grammar import format_path, read_path
from reasonkit.models.threads import torch_threads
from reasonkit.models.whitebox.handle import WhiteBoxLM
from reasonkit.rundir import atomic_write_bytes, atomic_write_json, read_json

WEIGHTS, CARD = "predictor.safetensors", "predictor.json"


@torch.inference_mode()
def prompt_features(lm: WhiteBoxLM, prompts: Sequence[Sequence[int]], batch_size: int = 64) -> torch.Tensor:
    """(N, 2 * hidden) float32: the final normed hidden states of each prompt on the default path, mean
    over its tokens and at its last token (left-padded batches; the padding is masked out)."""
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, prompt in enumerate(chunk):
            ids[r, width - len(prompt) :] = torch.tensor(list(prompt))
            mask[r, width - len(prompt) :] = 1
        device = lm.device
        hidden = lm.forward(lm.embed(ids), attention_mask=mask.to(device), use_cache=False).hidden.float()
        weights = mask.to(device).float()[:, :, None]  # (B, T, 1)
        mean = (hidden * weights).sum(1) / weights.sum(1)
        rows.append(torch.cat([mean, hidden[:, -1]], dim=-1).cpu())  # left padding: the last column is real
    return torch.cat(rows) if rows else torch.zeros((0, 2 * lm.hidden_size))


class CandidateMLP(nn.Module):
    """Standardised features -> one logit per candidate path (p(correct under that path))."""

    def __init__(self, features: int, candidates: int, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, candidates))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean, self.std  # buffers (typed as Tensor | Module by nn.Module)
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        return self.net((features - mean) / std)  # type: ignore[no-any-return]


@dataclass
class PathPredictor:
    """Candidates, the MLP over prompt features, and the choice rule (module docstring)."""

    candidates: list[tuple[int, ...]]
    num_layers: int
    network: CandidateMLP
    length_weight: float = 0.1
    info: dict[str, Any] | None = None  # base model, prompt call, training figures (saved in the card)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """(N, K) predicted probabilities that each candidate path answers correctly."""
        with torch.inference_mode():
            return torch.sigmoid(self.network(features.float()))

    def choose(self, features: torch.Tensor) -> list[tuple[int, ...]]:
        """One path per row: the candidate with the best p(correct) - length_weight * len / layers."""
        lengths = torch.tensor([len(p) for p in self.candidates], dtype=torch.float32)
        utility = self.scores(features) - self.length_weight * lengths / self.num_layers
        return [self.candidates[int(k)] for k in utility.argmax(-1)]

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save

        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS, save(state))
        first = self.network.net[0]
        assert isinstance(first, nn.Linear)
        mean = self.network.mean
        assert isinstance(mean, torch.Tensor)
        atomic_write_json(
            directory / CARD,
            {
                "format": "reasonkit.cola.predictor/1",
                "candidates": [format_path(p) for p in self.candidates],
                "num_layers": self.num_layers,
                "features": int(mean.shape[0]),
                "hidden": int(first.out_features),
                "length_weight": self.length_weight,
                **(self.info or {}),
            },
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PathPredictor:
        """A saved predictor; FileNotFoundError / ValueError naming the file and the fix."""
        from safetensors.torch import load_file

        directory = Path(directory)
        card_file, weights_file = directory / CARD, directory / WEIGHTS
        for file in (card_file, weights_file):
            if not file.is_file():
                raise FileNotFoundError(
                    f"{file} is missing: {directory} is not a trained path predictor; train one with "
                    "`reasonkit cola train-predictor RUN_DIR`"
                )
        card = read_json(card_file)
        try:
            if card.get("format") != "reasonkit.cola.predictor/1":
                raise ValueError(f"format {card.get('format')!r} is not reasonkit.cola.predictor/1")
            candidates = [read_path(str(p)) for p in card["candidates"]]
            network = CandidateMLP(int(card["features"]), len(candidates), int(card["hidden"]))
            network.load_state_dict(load_file(str(weights_file)))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"{directory} does not hold a valid path predictor ({exc}); retrain it with "
                "`reasonkit cola train-predictor RUN_DIR`"
            ) from None
        info = {
            k: v for k, v in card.items() if k not in {"candidates", "features", "hidden", "length_weight"}
        }
        return cls(candidates, int(card["num_layers"]), network.eval(), float(card["length_weight"]), info)


def fit(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    hidden: int = 64,
    epochs: int = 400,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
    threads: int | None = 1,
) -> CandidateMLP:
    """Train the MLP on (N, F) features and (N, K) 0/1 outcomes (full batch, Adam, BCE); deterministic."""
    if features.shape[0] != labels.shape[0] or features.shape[0] < 2:
        raise ValueError(
            f"need matching features and labels for at least 2 problems, got {features.shape[0]}"
        )
    torch.manual_seed(seed)
    network = CandidateMLP(features.shape[1], labels.shape[1], hidden)
    network.mean.copy_(features.mean(0))  # type: ignore[operator]
    network.std.copy_(features.std(0).clamp_min(1e-4))  # type: ignore[operator]
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    with torch_threads(threads):
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = loss_fn(network(features), labels.float())
            loss.backward()
            optimizer.step()
    return network.eval()
