"""One reasoning episode of RL-of-Thoughts, and the driver that runs many episodes' calls in batches.

An :class:`Episode` is one problem under navigation (arXiv 2505.14140, Sec. 3): it starts with the
LLM's self-evaluation of the bare problem, then each navigator action runs a logic block and the
paper's transition rules —

  - refine chosen at depth 0 runs reason instead;
  - after every non-terminal block the LLM is asked (yes/no) whether a final answer is already
    present; yes ends the episode with terminate;
  - after ``max_depth`` non-terminal blocks, terminate is forced;
  - otherwise the LLM self-evaluates the new step, which is the next state.

Every method that talks to the LLM is a *program* (see :mod:`reasonkit.navigators.blocks`);
:func:`run_programs` advances any number of them together, one ``backend.generate`` per distinct
set of sampling parameters per round, so a batch of episodes costs as many backend calls as the
longest one.

    >>> episode = Episode(problem, load_pack("compact"))                        # doctest: +SKIP
    >>> [scores] = run_programs(backend, [episode.start()])                     # doctest: +SKIP
    >>> [transition] = run_programs(backend, [episode.advance(0)])              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reasonkit.answers import grade_many
from reasonkit.backends.base import LanguageModel
from reasonkit.kit.base import timed_generate
from reasonkit.navigators.blocks import BLOCK_PROGRAMS, MAX_DEPTH, Program, Request, ask, effective_block
from reasonkit.navigators.blocks import terminate as terminate_block
from reasonkit.navigators.state import self_evaluate
from reasonkit.packs import BLOCK_IDS, PromptPack
from reasonkit.types import Completion, Cost, Problem, SamplingParams, Step, prompt_text

T = TypeVar("T")
#: Why an episode ended: the navigator chose terminate, the final-answer check said yes, the depth
#: limit was reached, or a strategy's budget ran out.
END_REASONS = ("terminate", "final_check", "max_depth", "budget")


def run_programs(backend: LanguageModel, programs: Sequence[Program[T]]) -> list[T]:
    """Run programs to completion together; return their values in order.

    Each round collects the pending request of every unfinished program, groups them by sampling
    parameters and sends each group in one ``backend.generate`` call (greedy, one completion each).
    A program is sent back a :class:`~reasonkit.types.Step` holding its prompt, output and cost (the
    call's wall time is shared out evenly among its prompts).
    """
    results: dict[int, T] = {}
    pending: dict[int, Request] = {}

    def advance(i: int, reply: Step | None) -> None:
        try:
            request = next(programs[i]) if reply is None else programs[i].send(reply)
        except StopIteration as stop:
            results[i] = stop.value
            return
        if not isinstance(request, Request):
            raise TypeError(f"program {i} yielded {type(request).__name__}, expected a Request")
        pending[i] = request

    for i in range(len(programs)):
        advance(i, None)
    while pending:
        groups: dict[SamplingParams, list[int]] = {}
        for i, request in pending.items():
            groups.setdefault(request.params, []).append(i)
        replies: dict[int, Step] = {}
        for params, members in groups.items():
            if params.n != 1:
                raise ValueError(f"navigator calls take one completion each, got n={params.n}")
            outputs, seconds = timed_generate(backend, [pending[i].prompt for i in members], params)
            for i, completions in zip(members, outputs):
                replies[i] = _step(pending[i], completions, seconds)
        pending = {}
        for i in sorted(replies):
            advance(i, replies[i])
    return [results[i] for i in range(len(programs))]


def _step(request: Request, completions: list[Completion], seconds: float) -> Step:
    if not completions:
        raise RuntimeError(f"the backend returned no completion for a {request.call!r} call")
    return Step(
        block=request.block,
        prompt=prompt_text(request.prompt),
        output=completions[0].text,
        cost=Cost.of(completions[:1], seconds),
        meta={"call": request.call, **completions[0].meta},
    )


@dataclass(frozen=True)
class Transition:
    """What one navigator action did. ``scores`` is the new state (None once the episode is done)."""

    block: str
    action: int
    done: bool
    scores: tuple[int, ...] | None
    ended_by: str | None = None


@dataclass
class Episode:
    """One problem under navigation: its reasoning history, every call made, and the blocks chosen."""

    problem: Problem
    pack: PromptPack
    max_depth: int = MAX_DEPTH
    steps: list[str] = field(default_factory=list)
    trace: list[Step] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    depth: int = 0
    scores: tuple[int, ...] | None = None
    final_text: str | None = None
    ended_by: str | None = None

    def __post_init__(self) -> None:
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")

    @property
    def done(self) -> bool:
        return self.final_text is not None

    @property
    def cost(self) -> Cost:
        return sum((s.cost for s in self.trace), Cost())

    def _logged(self, program: Generator[Request, Step, T]) -> Generator[Request, Step, T]:
        """Pass ``program``'s requests through, recording every call in the episode's trace."""
        try:
            request = next(program)
            while True:
                step = yield request
                self.trace.append(step)
                request = program.send(step)
        except StopIteration as stop:
            return stop.value

    def start(self) -> Generator[Request, Step, tuple[int, ...]]:
        """Program: the initial state, the LLM's self-evaluation of the bare problem."""
        self.scores = yield from self._logged(self_evaluate(self.pack, self.problem, self.steps))
        return self.scores

    def advance(self, action: int) -> Generator[Request, Step, Transition]:
        """Program: run the block ``action`` names, then the transition rules (module docstring)."""
        if self.done:
            raise RuntimeError(f"episode of problem {self.problem.id!r} is over; start a new one")
        block = effective_block(action, self.depth)
        self.blocks.append(block)
        if block == "terminate":
            return (yield from self.finish("terminate"))
        program = BLOCK_PROGRAMS[block](self.pack, self.problem, self.steps)
        self.steps = yield from self._logged(program)
        self.depth += 1
        check = self.pack.final_check(self.problem, self.steps)
        reply = yield from self._logged(self._ask("final_check", check))
        if self.pack.parse_yes_no(reply.output):
            return (yield from self.finish("final_check", block))
        if self.depth >= self.max_depth:
            return (yield from self.finish("max_depth", block))
        self.scores = yield from self._logged(self_evaluate(self.pack, self.problem, self.steps))
        return Transition(block, BLOCK_IDS[block], False, self.scores)

    def finish(self, reason: str, block: str = "terminate") -> Generator[Request, Step, Transition]:
        """Program: run terminate and end the episode (``reason`` is one of :data:`END_REASONS`)."""
        if reason not in END_REASONS:
            raise ValueError(f"reason must be one of {END_REASONS}, got {reason!r}")
        self.final_text = yield from self._logged(terminate_block(self.pack, self.problem, self.steps))
        self.ended_by, self.scores = reason, None
        return Transition(block, BLOCK_IDS[block], True, None, reason)

    def abandon(self) -> None:
        """End the episode without another call (a strategy's budget ran out): the last step stands
        as the final text, so an answer already written there still counts."""
        self.final_text = self.steps[-1] if self.steps else ""
        self.ended_by, self.scores = "budget", None

    def _ask(self, call: str, prompt: Any) -> Generator[Request, Step, Step]:
        reply = yield ask(self.pack, call, call, prompt, self.problem)
        return reply


def grade(problems: Sequence[Problem], texts: Sequence[str]) -> list[bool]:
    """Whether each final text answers its problem (multiple choice graded with its own option count)."""
    verdicts: list[bool] = [False] * len(problems)
    by_choices: dict[int | None, list[int]] = {}
    for i, problem in enumerate(problems):
        by_choices.setdefault(len(problem.choices) if problem.choices else None, []).append(i)
    for n_choices, members in by_choices.items():
        found = grade_many(
            [(texts[i], problems[i].answer, problems[i].kind) for i in members], n_choices=n_choices
        )
        for i, verdict in zip(members, found):
            verdicts[i] = verdict
    return verdicts
