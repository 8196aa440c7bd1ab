"""Models for navigator tests: a scripted arith LM built on the real teacher, and tiny random HF models.

(A uniquely named module: ``from conftest import`` would resolve to another folder's conftest in a
full test run.)

``ScriptedArithLM`` answers compact-pack prompts with the arith teacher's outputs (reasonkit.tasks.arith
.teacher), which makes it an exactly deterministic LanguageModel over the real prompt pack, parsers
and grader. Its one weakness is configurable: a final answer (direct, terminate, chain of thought)
is right only when at most ``answer_ops`` operations are left in the state it starts from (it cannot
do long sums in its head), otherwise it is off by one. Blocks therefore matter: terminating early is wrong, and on problems
longer than the depth limit only decompose (several operations per step) reaches the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tiny_models import build_model, build_tokenizer
from transformers import PreTrainedTokenizerFast

from reasonkit.packs import load_pack
from reasonkit.tasks.arith import count_ops, teacher
from reasonkit.tasks.arith.expr import render
from reasonkit.tasks.arith.training import restyle
from reasonkit.types import Completion, Prompt, SamplingParams

_CALL = re.compile(r"<(ans|cot|step|dec|sub|sum|plans|pick|follow|refine|done|eval)>")


class ScriptedArithLM:
    """A deterministic compact-pack arith model: the teacher, with terminate limited to ``answer_ops``."""

    capabilities = frozenset()
    prompt_pack = "compact"

    def __init__(self, answer_ops: int = 1, name: str = "scripted-arith") -> None:
        self.answer_ops = answer_ops
        self.name = name
        self.pack = load_pack("compact")
        self.calls = 0  # prompts answered, to check batching and caching
        self.batches = 0

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.batches += 1
        out = []
        for prompt in prompts:
            assert isinstance(prompt, str), "the compact pack renders text prompts"
            self.calls += 1
            text = self.respond(prompt)
            out.append([Completion(text, tokens_in=len(prompt), tokens_out=len(text) + 1)] * params.n)
        return out

    def respond(self, prompt: str) -> str:
        match = _CALL.search(prompt)
        assert prompt.startswith("<q>") and match, prompt
        question, *steps = prompt[3 : match.start()].split(";")
        call, args = match.group(1), prompt[match.end() :]
        pack = self.pack
        if call == "ans":
            return pack.format_answer(self._value(question, steps))
        if call == "cot":  # a chain of thought, continuing the steps given after <cot> (terminate)
            steps = [s for s in args.split(";") if s]
            rest = [
                restyle(pack, s)
                for s in teacher.solve_subtask(render(teacher.current_expression(question, steps)))[0]
            ]
            return pack.format_cot(rest, self._value(question, steps))
        if call == "sub":
            gold, value = teacher.solve_subtask(question)
            return pack.format_cot([restyle(pack, s) for s in gold], value)
        if call == "step":
            return teacher.reason(question, steps)
        if call == "dec":
            return pack.format_subtasks(teacher.decompose(question, steps))
        if call == "sum":
            pairs = [item.rsplit("=", 1) for item in args.split(",") if "=" in item]
            values = [int(v) if re.fullmatch(r"-?\d+", v) else None for _, v in pairs]
            return teacher.summarize(question, steps, [s for s, _ in pairs], values)
        if call == "plans":
            return pack.format_plans(teacher.debate_plans(question, steps))
        if call == "pick":
            return pack.format_choice(teacher.debate_choice(question, steps, args.split(";")))
        if call == "follow":
            return teacher.debate_follow(question, steps, args)
        if call == "refine":
            return teacher.refine(question, steps)
        if call == "done":
            return pack.format_yes_no(teacher.final_check(question, steps))
        return pack.format_scores(teacher.self_evaluate(question, steps))

    def _value(self, question: str, steps: Sequence[str]) -> int:
        """The state's value, off by one when more than ``answer_ops`` operations are left."""
        node = teacher.current_expression(question, steps)
        value = teacher.answer(question, steps)
        return value if count_ops(node) <= self.answer_ops else value + 1


# ---------------------------------------------------------------- tiny random transformers models

#: ChatML, the template family of Qwen models (the Qwen PRM's input is rendered through it).
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(extra_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """The suite's tiny byte-level BPE with a ChatML template and ``extra_tokens`` as single tokens."""
    tokenizer = build_tokenizer(chat_template=CHATML)
    tokenizer.add_tokens(["<|im_start|>", "<|im_end|>", *extra_tokens], special_tokens=True)
    return tokenizer


def tiny_llama(tokenizer: PreTrainedTokenizerFast, seed: int = 0):
    model = build_model(tokenizer, "llama", seed=seed)
    model.config.max_position_embeddings = 4096  # rotary positions: natural-pack prompts are long in bytes
    return model


def short_pack(max_new_tokens: int = 6, base: str = "compact"):
    """A pack with every call capped at a few tokens (random models never emit the stop)."""
    pack = load_pack(base)
    return pack.with_overrides(
        {"calls": {call: {"max_new_tokens": max_new_tokens} for call in pack.to_dict()["calls"]}}
    )
