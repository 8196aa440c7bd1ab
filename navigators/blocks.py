"""The five RL-of-Thoughts logic blocks and their transition rules (arXiv 2505.14140, Sec. 3).

A block is written once, as a *program*: a generator that yields :class:`Request` objects (one
backend call each), receives each call's :class:`~reasonkit.types.Step` (prompt, output, cost) and
returns the new reasoning history. The same program serves one problem or a thousand:
:func:`reasonkit.navigators.episode.run_programs` advances many programs together and sends every
request that shares sampling parameters in one ``backend.generate`` call. Prompts come from a prompt
pack, so one block implementation renders as the paper's natural language or as the built-in
model's control tokens.

    >>> from reasonkit.navigators.blocks import effective_block
    >>> effective_block(3, depth=0)    # refine at step 0 has nothing to refine: reason instead
    'reason'

Blocks (action ids follow :data:`reasonkit.packs.BLOCKS`):
  0 reason     one more reasoning step;
  1 decompose  list subtasks, solve each in order (seeing earlier results), summarise them into one step;
  2 debate     three plans, compare them (unparsable choice: plan 1), one step along the chosen plan;
  3 refine     check and rewrite the last step (replacing it or appending, as the pack says);
  4 terminate  the final answer in the task's format.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from reasonkit.packs import BLOCK_IDS, BLOCKS, PromptPack
from reasonkit.types import Problem, Prompt, SamplingParams, Step

#: The paper's depth limit: after this many non-terminal blocks, terminate is forced.
MAX_DEPTH = 5
N_ACTIONS = len(BLOCKS)
TERMINATE = BLOCK_IDS["terminate"]


@dataclass(frozen=True)
class Request:
    """One backend call a program needs: which block asks, which pack call, the prompt, how to sample."""

    block: str
    call: str
    prompt: Prompt
    params: SamplingParams


T = TypeVar("T")
#: A program yields requests, is sent each request's Step, and returns a value of type T.
Program = Generator[Request, Step, T]
BlockProgram = Generator[Request, Step, list[str]]


def ask(pack: PromptPack, block: str, call: str, prompt: Prompt, problem: Problem) -> Request:
    """A request for ``call`` with the pack's sampling hints for the problem's kind."""
    return Request(block, call, prompt, pack.sampling(call, problem.kind))


def effective_block(action: int, depth: int) -> str:
    """The block an action runs at ``depth``: refine with no step yet becomes reason (the paper's rule)."""
    if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < N_ACTIONS:
        raise ValueError(f"action must be an integer in 0..{N_ACTIONS - 1} (one of {BLOCKS}), got {action!r}")
    block = BLOCKS[action]
    return "reason" if block == "refine" and depth == 0 else block


def _extend(steps: Sequence[str], text: str) -> list[str]:
    # An empty output adds no step: an empty line in the history would only confuse later calls.
    text = text.strip()
    return [*steps, text] if text else list(steps)


def reason(pack: PromptPack, problem: Problem, steps: Sequence[str]) -> BlockProgram:
    """Reason exactly one more step."""
    out = yield ask(pack, "reason", "reason_step", pack.reason_step(problem, steps), problem)
    return _extend(steps, out.output)


def decompose(pack: PromptPack, problem: Problem, steps: Sequence[str]) -> BlockProgram:
    """Subtasks, each solved in order with the earlier results in view, then one summary step."""
    listing = yield ask(pack, "decompose", "decompose", pack.decompose(problem, steps), problem)
    subtasks = pack.parse_subtasks(listing.output)
    results: list[str] = []
    for i in range(len(subtasks)):
        prompt = pack.solve_subtask(problem, steps, subtasks, results, i)
        solved = yield ask(pack, "decompose", "solve_subtask", prompt, problem)
        results.append(solved.output.strip())
    prompt = pack.summarize(problem, steps, subtasks, results)
    summary = yield ask(pack, "decompose", "summarize", prompt, problem)
    return _extend(steps, summary.output)


def debate(pack: PromptPack, problem: Problem, steps: Sequence[str]) -> BlockProgram:
    """Three plans, a comparison that picks one (plan 1 when unparsable), one step along it."""
    proposed = yield ask(pack, "debate", "debate_plans", pack.debate_plans(problem, steps), problem)
    plans = pack.parse_plans(proposed.output)
    compared = yield ask(
        pack, "debate", "debate_compare", pack.debate_compare(problem, steps, plans), problem
    )
    choice = pack.parse_plan_choice(compared.output, len(plans))
    prompt = pack.debate_follow(problem, steps, plans, choice)
    followed = yield ask(pack, "debate", "debate_follow", prompt, problem)
    return _extend(steps, followed.output)


def refine(pack: PromptPack, problem: Problem, steps: Sequence[str]) -> BlockProgram:
    """Check and rewrite the last step; the pack says whether the result replaces it or follows it."""
    if not steps:
        raise ValueError("refine needs a step to refine; at depth 0 run reason instead (effective_block)")
    out = yield ask(pack, "refine", "refine", pack.refine(problem, steps), problem)
    text = pack.parse_refine(out.output)  # the step, without the pack's scratch work (compact3)
    if not text:
        return list(steps)
    return [*steps[:-1], text] if pack.refine_replaces_last else [*steps, text]


def terminate(pack: PromptPack, problem: Problem, steps: Sequence[str]) -> Generator[Request, Step, str]:
    """The final answer text (graded by :func:`reasonkit.answers.is_correct`)."""
    out = yield ask(pack, "terminate", "terminate", pack.terminate(problem, steps), problem)
    return out.output


#: The non-terminal blocks by name.
BLOCK_PROGRAMS: dict[str, Callable[[PromptPack, Problem, Sequence[str]], BlockProgram]] = {
    "reason": reason,
    "decompose": decompose,
    "debate": debate,
    "refine": refine,
}
