"""Process reward models: score each reasoning step, as RL-of-Thoughts' step reward (arXiv 2505.14140).

Two input formats cover the PRMs people use:

- :class:`MathShepherdPRM` — ``peiyi9979/math-shepherd-mistral-7b-prm`` and PRMs trained in its
  format (a causal LM): ``"{question} Step 1: … ки\\nStep 2: … ки"``; a step's score is the softmax
  over the logits of ``"+"`` and ``"-"`` at its ``ки`` tag, probability of ``"+"``. When the input
  passes ``max_tokens`` (4096, as the paper), the oldest steps are dropped.
- :class:`QwenMathPRM` — ``Qwen/Qwen2.5-Math-PRM-7B`` (a token classifier with two labels, custom
  code): steps joined with ``"<extra_0>"`` inside the assistant turn of its chat template; a step's
  score is the softmax over the two labels at its ``<extra_0>``, probability of class 1.

Both read a transformers model and tokenizer (white-box); ``from_backend`` takes them from an
:class:`~reasonkit.backends.hf.HFBackend` and fails clearly on a black-box server backend.

    >>> prm = load_prm("math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm")   # doctest: +SKIP
    >>> prm.step_scores("What is 2+3*4?", ["3*4=12", "2+12=14"])                 # doctest: +SKIP
    [0.93, 0.97]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reasonkit.backends.base import LanguageModel, require_whitebox

PRM_FORMATS = ("math-shepherd", "qwen-prm")


class PRMError(ValueError):
    """A process reward model cannot be built or does not fit its declared input format."""


class _TransformersPRM:
    """Shared body: tokenise formatted inputs, one padded forward, read scores at the step markers."""

    format_name = ""
    marker_id: int  # the token that ends each step (set by subclasses)

    def __init__(self, model: Any, tokenizer: Any, *, max_tokens: int = 4096, batch_size: int = 8) -> None:
        if max_tokens < 8:
            raise PRMError(f"max_tokens must be at least 8, got {max_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.name = f"{self.format_name}:{getattr(model, 'name_or_path', '') or type(model).__name__}"

    @classmethod
    def from_backend(cls, backend: LanguageModel, **kwargs: Any) -> Any:
        """The PRM an HF backend holds (it needs the backend's model and tokenizer)."""
        handle = require_whitebox(backend, f"{cls.__name__} (a process reward model)")
        return cls(handle.model, handle.tokenizer, **kwargs)

    # -- to implement -------------------------------------------------------------------------
    def format(self, question: str, steps: Sequence[str], first: int = 1) -> str:
        raise NotImplementedError

    def _marker_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """(T, V) logits at marker positions -> (T,) step scores."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids and the step-marker positions, dropping the oldest steps until it fits."""
        for drop in range(len(steps)):
            text = self.format(question, steps[drop:], first=drop + 1)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if len(ids) <= self.max_tokens or drop == len(steps) - 1:
                positions = [i for i, t in enumerate(ids) if t == self.marker_id]
                if len(positions) != len(steps) - drop:
                    raise PRMError(
                        f"{self.name}: found {len(positions)} step markers for {len(steps) - drop} steps; "
                        "the tokenizer does not keep the marker as one token"
                    )
                if len(ids) > self.max_tokens:  # even the last step alone is too long: keep its end
                    cut = len(ids) - self.max_tokens
                    ids, positions = ids[cut:], [p - cut for p in positions if p >= cut]
                return ids, positions
        return [], []

    def step_scores(self, question: str, steps: Sequence[str]) -> list[float]:
        """The score of every step that fits in ``max_tokens`` (dropped oldest steps are left out)."""
        return self.scores_many([(question, steps)])[0]

    def last_step_scores(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """The score of each item's last step, in one batched pass (the RLoT step reward)."""
        return [scores[-1] if scores else 0.0 for scores in self.scores_many(items)]

    def scores_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        out: list[list[float]] = []
        device = self.model.get_input_embeddings().weight.device
        for start in range(0, len(items), self.batch_size):
            encoded = [
                self.encode(q, s) if s else ([], []) for q, s in items[start : start + self.batch_size]
            ]
            rows = [(ids, pos) for ids, pos in encoded if ids]
            scores: list[list[float]] = []
            if rows:
                width = max(len(ids) for ids, _ in rows)
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
                input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, (ids, _) in enumerate(rows):  # right padding: positions stay where they were
                    input_ids[r, : len(ids)] = torch.tensor(ids)
                    mask[r, : len(ids)] = 1
                with torch.no_grad():
                    output = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
                logits = output.logits if hasattr(output, "logits") else output[0]  # (B, T, V)
                for r, (_, pos) in enumerate(rows):
                    at = logits[r, torch.tensor(pos, dtype=torch.long, device=logits.device)].float()
                    scores.append(self._marker_scores(at).tolist())
            it = iter(scores)
            out += [next(it) if ids else [] for ids, _ in encoded]
        return out


def _single_token(tokenizer: Any, text: str, owner: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise PRMError(f"{owner}: {text!r} must be one token of the tokenizer, got {len(ids)} tokens {ids}")
    return int(ids[0])


class MathShepherdPRM(_TransformersPRM):
    """Math-Shepherd format: ``"{question} Step 1: … ки\\nStep 2: … ки"``, P("+") at each ``ки``."""

    format_name = "math-shepherd"
    STEP_TAG = "ки"
    GOOD, BAD = "+", "-"

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        # The model card's recipe: encode("+ -") without the BOS gives the two candidate tokens
        # (SentencePiece: "▁+", "▁-"); byte-level tokenizers split " -", so read each sign alone there.
        pair = list(tokenizer(f"{self.GOOD} {self.BAD}", add_special_tokens=False)["input_ids"])
        if len(pair) != 2:
            pair = [_single_token(tokenizer, sign, self.name) for sign in (self.GOOD, self.BAD)]
        self.candidates = pair
        self.marker_id = _single_token(tokenizer, self.STEP_TAG, self.name)

    def format(self, question: str, steps: Sequence[str], first: int = 1) -> str:
        # A tag inside a step's own text would be read as a step boundary.
        body = "\n".join(
            f"Step {i}: {s.replace(self.STEP_TAG, '').strip()} {self.STEP_TAG}"
            for i, s in enumerate(steps, first)
        )
        return f"{question.replace(self.STEP_TAG, '').strip()} {body}"

    def _marker_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, self.candidates].softmax(dim=-1)[:, 0]


class QwenMathPRM(_TransformersPRM):
    """Qwen2.5-Math-PRM format: steps joined by ``<extra_0>`` in the assistant turn; P(class 1) there."""

    format_name = "qwen-prm"
    SEP = "<extra_0>"
    SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if not getattr(tokenizer, "chat_template", None):
            raise PRMError(f"{self.name}: the tokenizer has no chat template; Qwen PRMs need theirs")
        self.marker_id = _single_token(tokenizer, self.SEP, self.name)

    def format(self, question: str, steps: Sequence[str], first: int = 1) -> str:
        messages = [
            {"role": "system", "content": self.SYSTEM},
            {"role": "user", "content": question.replace(self.SEP, "")},
            {"role": "assistant", "content": "".join(s.replace(self.SEP, "") + self.SEP for s in steps)},
        ]
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))

    def _marker_scores(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != 2:
            raise PRMError(
                f"{self.name}: expected 2 labels per token (a Qwen2.5-Math-PRM head), got {logits.shape[-1]}"
            )
        return logits.softmax(dim=-1)[:, 1]


ProcessRewardModel = MathShepherdPRM | QwenMathPRM


def load_prm(
    spec: str, *, device: str | None = None, dtype: str = "auto", **kwargs: Any
) -> ProcessRewardModel:
    """A PRM from ``"FORMAT:MODEL"``: ``math-shepherd:<HF id or dir>`` or ``qwen-prm:<HF id or dir>``."""
    fmt, sep, target = spec.partition(":")
    if not sep or fmt not in PRM_FORMATS or not target:
        raise PRMError(
            f"PRM spec {spec!r} must be FORMAT:MODEL with FORMAT one of {PRM_FORMATS}, e.g. "
            "'math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm' or 'qwen-prm:Qwen/Qwen2.5-Math-PRM-7B'"
        )
    from reasonkit.backends.hf_load import load, locate, placement, resolve_dtype

    if fmt == "math-shepherd":
        loaded = load(target, device=device, dtype=dtype, trust_remote_code=False, download=None)
        return MathShepherdPRM(loaded.model, loaded.tokenizer, **kwargs)
    from transformers import AutoModel, AutoTokenizer

    source, directory = locate(target, None)
    place, on_cpu = placement(device)
    # Qwen2.5-Math-PRM ships its reward head as custom code: the user asked for this model by name.
    tokenizer = AutoTokenizer.from_pretrained(
        source, trust_remote_code=True, local_files_only=directory is not None
    )
    model = AutoModel.from_pretrained(
        source,
        dtype=resolve_dtype(dtype, on_cpu),
        trust_remote_code=True,
        local_files_only=directory is not None,
        **place,
    )
    return QwenMathPRM(model, tokenizer, **kwargs)
