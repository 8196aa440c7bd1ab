"""The RL-of-Thoughts vocabulary: logic blocks, self-evaluation aspects, and prompt-pack call names.

Light on purpose (no imports beyond the standard library): navigators, packs, the arith teacher and
the model trainer all share these names. Facts from the paper (arXiv 2505.14140) and its code.
"""

from __future__ import annotations

#: The five logic blocks; a navigator's action ``i`` is ``BLOCKS[i]``.
BLOCKS: tuple[str, ...] = ("reason", "decompose", "debate", "refine", "terminate")
BLOCK_IDS: dict[str, int] = {name: i for i, name in enumerate(BLOCKS)}

#: The seven self-evaluation aspects, in state-vector order.
ASPECTS: tuple[str, ...] = ("A1", "A2", "A3", "B1", "B2", "C1", "C2")
ASPECT_MEANINGS: dict[str, str] = {
    "A1": "Correctness of modeling: whether the current step is correctly derived from the original problem.",
    "A2": "Clarity for further reasoning: whether the current step is clearly presented, without ambiguity, "
    "to support further reasoning.",
    "A3": "Correctness of calculation: whether the numerical computation in the current step is performed "
    "correctly.",
    "B1": "Complexity to reach the final answer: whether complex reasoning or calculation is still needed "
    "to reach the final answer from the current step.",
    "B2": "Alternative methods in further reasoning: whether there exist multiple alternative methods to "
    "solve the problem in the current step.",
    "C1": "Closeness to the final solution: whether the current step is close enough to directly reach "
    "the final answer.",
    "C2": "Completeness within the step: whether all necessary elements within this step are known from "
    "the problem or previous steps.",
}
#: Score values: 1 false, 2 unsure, 3 true, 0 not applicable (and anything unparsable).
SCORES: dict[int, str] = {0: "not applicable", 1: "false", 2: "unsure", 3: "true"}

#: Every call a prompt pack renders. A block is one or more calls:
CALLS: tuple[str, ...] = (
    "direct",
    "cot",
    "reason_step",
    "decompose",
    "solve_subtask",
    "summarize",
    "debate_plans",
    "debate_compare",
    "debate_follow",
    "refine",
    "terminate",
    "final_check",
    "self_evaluate",
    "answer",
)
#: Calls a pack may leave out, and the call whose template stands in for each. ``answer`` states the
#: final answer of a (possibly unfinished) state with no further work: the built-in model's training
#: task for it is named "terminate" (docs/prompt-packs.md); packs whose terminate already answers
#: directly (the natural one) need not define it.
OPTIONAL_CALLS: dict[str, str] = {"answer": "terminate"}
BLOCK_CALLS: dict[str, tuple[str, ...]] = {
    "reason": ("reason_step",),
    "decompose": ("decompose", "solve_subtask", "summarize"),
    "debate": ("debate_plans", "debate_compare", "debate_follow"),
    "refine": ("refine",),
    "terminate": ("terminate",),
}
