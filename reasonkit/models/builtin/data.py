"""Training batches for the built-in model: arith (prompt, target) pairs as padded token tensors.

Step ``s`` of a run trains on pairs ``s·B … (s+1)·B − 1`` of
``reasonkit.tasks.arith.training_examples("train", seed=seed)`` (B = batch size). Pair ``i`` depends
only on (split, seed, i), so a resumed run regenerates exactly the batches it has not seen yet.

Each sequence is ``<bos> prompt target`` (the way HFBackend encodes a prompt, then the answer); the
labels are the target tokens (ending with the pack's ``"\\n"``), ``-100`` elsewhere, so the loss is on
targets only. A step's pairs are sorted by length and cut into micro-batches of at most
``max_tokens`` padded tokens: pairs run 20–380 characters, and padding a random batch to its longest
row would waste most of the compute. Rows are padded on the *right*, where causal layers never look,
so no attention mask is needed and the kernels take their unmasked paths.

The teacher costs ~2 ms per pair on one core, so on a GPU machine the data is the bottleneck:
:class:`StepBatches` is an ``IterableDataset`` whose DataLoader workers each build every W-th step
(worker w: steps ≡ w mod W); the DataLoader reads workers round-robin, so steps arrive in order.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from reasonkit.models.builtin.tokenizer import BOS, PAD, build_backend_tokenizer, vocabulary
from reasonkit.tasks.arith import training_examples

IGNORE = -100


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # (b, T) long, right-padded with <pad>
    labels: torch.Tensor  # (b, T) long, target token ids where trained on, IGNORE elsewhere
    tasks: list[str]  # the pack call of each row (for per-task validation figures)


@dataclass
class StepBatch:
    step: int
    micro: list[MicroBatch]
    target_tokens: int  # labelled tokens in the whole step (the loss is averaged over these)
    tokens: int  # real (unpadded) tokens in the whole step

    def pin_memory(self) -> StepBatch:
        """Page-locked copies (the DataLoader calls this with pin_memory=True) for async host-to-GPU copies."""
        micro = [MicroBatch(m.input_ids.pin_memory(), m.labels.pin_memory(), m.tasks) for m in self.micro]
        return StepBatch(self.step, micro, self.target_tokens, self.tokens)


class PairEncoder:
    """Turns (prompt, target) pairs into token ids and labels with the built-in tokenizer."""

    def __init__(self) -> None:
        self.tokenizer = build_backend_tokenizer()
        vocab = vocabulary()
        self.bos, self.pad = vocab[BOS], vocab[PAD]

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], int]]:
        """(ids = <bos> prompt target, index where the target starts) per pair."""
        prompts = self.tokenizer.encode_batch([p for p, _ in pairs], add_special_tokens=False)
        targets = self.tokenizer.encode_batch([t for _, t in pairs], add_special_tokens=False)
        return [([self.bos, *p.ids, *t.ids], 1 + len(p.ids)) for p, t in zip(prompts, targets)]

    def micro_batches(
        self,
        pairs: Sequence[tuple[str, str]],
        tasks: Sequence[str],
        max_tokens: int,
        bucket_ratio: float = 0.75,
    ) -> list[MicroBatch]:
        """Sort by length (longest first) and cut into right-padded micro-batches.

        A micro-batch holds at most ``max_tokens`` padded tokens, and only rows at least
        ``bucket_ratio`` times as long as its longest row (so padding wastes < 1 - ratio of it).
        """
        encoded = self.encode(pairs)
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
        groups: list[list[int]] = []
        for i in order:
            width = len(encoded[groups[-1][0]][0]) if groups else 0  # the group's first row is its longest
            fits = (len(groups[-1]) + 1) * width <= max_tokens if groups else False
            if fits and len(encoded[i][0]) >= bucket_ratio * width:
                groups[-1].append(i)
            else:
                groups.append([i])
        out = []
        for group in groups:
            width = len(encoded[group[0]][0])
            ids = torch.full((len(group), width), self.pad, dtype=torch.long)
            labels = torch.full((len(group), width), IGNORE, dtype=torch.long)
            for row, i in enumerate(group):
                seq, start = encoded[i]
                ids[row, : len(seq)] = torch.tensor(seq)
                labels[row, start : len(seq)] = ids[row, start : len(seq)]
            out.append(MicroBatch(ids, labels, [tasks[i] for i in group]))
        return out


_CONTROL = re.compile(r"<([a-z]+)>")


def task_of(prompt: str) -> str:
    """The call a compact prompt makes: its last control token without brackets ("cot", "refine", …;
    direct and terminate share "ans")."""
    found = _CONTROL.findall(prompt)
    return found[-1] if found else "?"


#: extra (prompt, target) pairs mixed into the stream, and the share of each step they take
Extra = tuple[Sequence[tuple[str, str]], float]


def mix_extra(pairs: list[Any], start: int, seed: int, extra: Extra | None) -> list[Any]:
    """Replace stream pair ``start + j`` by an extra pair with probability ``share``; which one is drawn
    from (seed, index) alone, so a resumed run sees the same mixture."""
    if extra is None or not extra[0] or extra[1] <= 0:
        return pairs
    items, share = extra
    out = list(pairs)
    for j in range(len(out)):
        rng = random.Random(f"reasonkit.train-lm.extra:{seed}:{start + j}")
        if rng.random() < share:
            out[j] = items[rng.randrange(len(items))]
    return out


def load_extra(path: str) -> list[tuple[str, str]]:
    """(prompt, target) pairs from a JSONL file with "prompt" and "target" strings per line."""
    from reasonkit.rundir import iter_jsonl

    pairs = []
    for line, obj in iter_jsonl(path):
        prompt, target = obj.get("prompt"), obj.get("target")
        if not isinstance(prompt, str) or not isinstance(target, str) or not prompt or not target:
            raise ValueError(
                f'{path}, line {line}: each line needs non-empty "prompt" and "target" strings '
                "(as `reasonkit eval own-mistakes --pairs FILE` writes)"
            )
        pairs.append((prompt, target))
    if not pairs:
        raise ValueError(f"{path} holds no pairs; give a file of prompt/target lines or drop --extra-data")
    return pairs


def build_step(
    encoder: PairEncoder,
    split: str,
    seed: int,
    step: int,
    batch_size: int,
    max_tokens: int,
    bucket_ratio: float,
    extra: Extra | None = None,
    pack: str = "compact",
) -> StepBatch:
    start = step * batch_size
    pairs = mix_extra(
        list(training_examples(split, n=batch_size, seed=seed, start=start, pack=pack)), start, seed, extra
    )
    tasks = [task_of(str(p)) for p, _ in pairs]
    micro = encoder.micro_batches(pairs, tasks, max_tokens, bucket_ratio)  # type: ignore[arg-type]
    target = sum(int((m.labels != IGNORE).sum()) for m in micro)
    tokens = sum(int((m.input_ids != encoder.pad).sum()) for m in micro)
    return StepBatch(step, micro, target, tokens)


class StepBatches(IterableDataset):
    """Steps ``start .. end-1`` of a run's training stream, one :class:`StepBatch` per item."""

    def __init__(
        self,
        seed: int,
        start: int,
        end: int,
        batch_size: int,
        max_tokens: int,
        bucket_ratio: float,
        extra: Extra | None = None,
        pack: str = "compact",
    ) -> None:
        super().__init__()
        self.seed, self.start, self.end = seed, start, end
        self.batch_size, self.max_tokens, self.bucket_ratio = batch_size, max_tokens, bucket_ratio
        self.extra, self.pack = extra, pack

    def __iter__(self) -> Iterator[StepBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            torch.set_num_threads(1)  # workers run Python (the teacher), not matmuls
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        encoder = PairEncoder()
        for step in range(self.start + worker, self.end, workers):
            yield build_step(
                encoder,
                "train",
                self.seed,
                step,
                self.batch_size,
                self.max_tokens,
                self.bucket_ratio,
                self.extra,
                self.pack,
            )


def step_loader(
    seed: int,
    start: int,
    end: int,
    batch_size: int,
    max_tokens: int,
    bucket_ratio: float,
    workers: int,
    pin_memory: bool,
    extra: Extra | None = None,
    pack: str = "compact",
) -> Any:
    """A DataLoader over :class:`StepBatches` with ``workers`` processes (0 = in this process)."""
    from torch.utils.data import DataLoader

    dataset = StepBatches(seed, start, end, batch_size, max_tokens, bucket_ratio, extra, pack)
    options: dict[str, Any] = {}
    if workers > 0:
        options = {"prefetch_factor": 4, "persistent_workers": False}
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        collate_fn=lambda item: item,
        **options,
    )


def validation_set(seed: int, n: int, max_tokens: int, pack: str = "compact") -> list[MicroBatch]:
    """``n`` fixed validation-split pairs (a different stream from training: split and seed differ)."""
    if n == 0:
        return []
    encoder = PairEncoder()
    pairs = list(training_examples("validation", n=n, seed=seed, pack=pack))
    tasks = [task_of(str(p)) for p, _ in pairs]
    return encoder.micro_batches(pairs, tasks, max_tokens)  # type: ignore[arg-type]
