"""What a generate request holds, checked once for every backend: prompts and stop strings.

Pure Python (no torch), so the HTTP backend and the server stay light.

A stop string ends a completion and is not part of its text (the OpenAI API's behaviour). Every
backend trims client-side with :func:`trim_at_stop` even when the engine already stopped, because
some servers return the stop string itself or stop only on the token where it completes.

    >>> trim_at_stop("x = 4\\nQuestion: next", ("\\nQuestion:",))
    ('x = 4', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reasonkit.types import Prompt


def trim_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` cut before the earliest occurrence of any stop string, and whether one occurred."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def check_prompt(prompt: object, index: int) -> Prompt:
    """``prompt`` if it is a string or a list of ``{"role", "content"}`` messages, else a clear error."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        for m in prompt:
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(
                    f"prompt {index}: every chat message needs string 'role' and 'content' fields, got {dict(m)!r}"
                )
        return prompt  # type: ignore[return-value]
    raise ValueError(
        f"prompt {index}: expected a string (completion mode) or a non-empty list of "
        f"{{'role': ..., 'content': ...}} messages (chat mode), got {type(prompt).__name__}: {prompt!r:.80}"
    )


def check_prompts(prompts: object) -> list[Prompt]:
    """A batch of prompts validated one by one; a bare string is refused (it is not a batch)."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ValueError(
            "generate() takes a list of prompts; wrap a single prompt in a list: generate([prompt], params)"
        )
    return [check_prompt(p, i) for i, p in enumerate(prompts)]
