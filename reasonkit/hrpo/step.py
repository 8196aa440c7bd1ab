"""One HRPO optimizer step: rollout → rewards → advantages → reference log-probs → one update.

Strictly on-policy: the rollout is sampled from the current policy, and its batch is used for one
gradient step only. Each process handles whole prompt groups (a group never straddles processes, so
its advantages need no communication); the loss is each process's mean over its sequences, and
distributed data parallel averages the gradients, which equals the mean over the global batch when
every process holds the same number of sequences (the trainer checks it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasonkit.backends.request import trim_at_stop
from reasonkit.hrpo.objective import group_advantages, policy_loss
from reasonkit.hrpo.policy import Policy
from reasonkit.hrpo.problems import rewards
from reasonkit.hrpo.rollout import HybridHooks, rollout_generator, sample
from reasonkit.types import Problem


@dataclass
class StepInputs:
    """This process's share of a step: its problems, their global indices and encoded prompts."""

    problems: list[Problem]
    indices: list[int]
    prompts: list[list[int]]


@dataclass
class StepSettings:
    group_size: int
    max_new_tokens: int
    top_k: int
    beta: float
    two_pass: bool
    micro_batch: int
    seed: int
    delimiter: str
    stop: tuple[str, ...]
    eos_ids: tuple[int, ...]
    pad_id: int


def train_step(
    step: int,
    inputs: StepInputs,
    policy: Policy,
    forward: Any,
    hooks: HybridHooks,
    optimizer: torch.optim.Optimizer,
    clip: Any,
    settings: StepSettings,
) -> dict[str, Any]:
    """Run one step; returns per-row tensors (for gathering across processes) and the time split.

    ``forward`` is the (possibly distributed-data-parallel) module whose call is ``policy.forward``;
    ``clip()`` clips the synchronised gradients before the optimizer step.
    """
    G = settings.group_size
    started = time.perf_counter()
    rows = [prompt for prompt in inputs.prompts for _ in range(G)]
    generators = [
        rollout_generator(settings.seed, step, index, j) for index in inputs.indices for j in range(G)
    ]
    policy.eval()
    rollout = sample(
        policy.lm,
        hooks,
        rows,
        generators,
        max_new_tokens=settings.max_new_tokens,
        top_k=settings.top_k,
        eos_ids=settings.eos_ids,
        stop=settings.stop,
        pad_id=settings.pad_id,
    ).to(policy.lm.device)
    texts = [completion_text(policy.tokenizer, tokens, settings) for tokens in rollout.completions]
    graded = rewards(texts, [p for p in inputs.problems for _ in range(G)], settings.delimiter)
    reward = torch.tensor([r for r, _, _ in graded])
    advantages = group_advantages(reward, G).to(policy.lm.device)
    rolled = time.perf_counter()

    micro = [slice(s, s + settings.micro_batch) for s in range(0, len(rows), settings.micro_batch)]
    reference = [policy.reference_logprobs(rollout.select(m)) for m in micro]
    referenced = time.perf_counter()

    policy.train()
    kls = []
    loss_total = 0.0
    for m, ref in zip(micro, reference):
        batch = rollout.select(m)
        logprobs, _ = forward(batch, settings.two_pass)
        loss, kl = policy_loss(logprobs, ref, advantages[m], batch.completion_mask, settings.beta)
        (loss * (len(batch.completions) / len(rows))).backward()
        loss_total += float(loss.detach()) * len(batch.completions) / len(rows)
        kls.append(kl)
    grad_norm = clip()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    updated = time.perf_counter()
    lengths = torch.tensor(rollout.lengths, dtype=torch.float32)
    return {
        "rows": {
            "reward": reward,
            "correct": torch.tensor([float(ok) for _, ok, _ in graded]),
            "delimiter_once": torch.tensor([float(once) for _, _, once in graded]),
            "length": lengths,
            "thinking_length": rollout.thinking.sum(1).float().cpu(),
            "hidden_share": rollout.shares.float().cpu(),
            "kl": torch.cat(kls).float().cpu(),
            "truncated": torch.tensor([float(r == "length") for r in rollout.finish_reasons]),
        },
        "groups_varied": torch.tensor(
            [float(reward.view(-1, G)[g].std() > 0) for g in range(len(inputs.prompts))]
        ),
        "loss": loss_total,
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
        "seconds": {
            "rollout": rolled - started,
            "reference": referenced - rolled,
            "update": updated - referenced,
        },
        "tokens": int(lengths.sum()),
    }


def completion_text(tokenizer: Any, tokens: Sequence[int], settings: StepSettings) -> str:
    """The completion's text as a backend returns it: special tokens dropped, cut at a stop string."""
    text = tokenizer.decode(list(tokens), skip_special_tokens=True)
    return trim_at_stop(text, settings.stop)[0] if settings.stop else text
