"""Navigator calls never run a model past its context: a row stops there, the request is unchanged.

A prompt pack's budget is fixed per call (terminate: 360 tokens on the built-in model) while the
prompt grows with the reasoning history, so prompt + budget often passes the model's 512 positions.
The backend ends such a row at the context (``finish_reason="length"``) instead of warning about
the budget on every training run; nothing changes for rows that stop earlier.
"""

from __future__ import annotations

import warnings

from navigator_helpers import tiny_llama, tiny_tokenizer

from reasonkit.backends.hf import HFBackend, context_length
from reasonkit.types import SamplingParams


def _backends(limit: int) -> tuple[HFBackend, HFBackend]:
    """The same tiny random model twice: with a wide context (the reference) and with ``limit``."""
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    wide = HFBackend(model, tokenizer, name="wide")
    model.config.max_position_embeddings = limit
    return wide, HFBackend(model, tokenizer, name="narrow")


def test_a_row_stops_at_the_context_with_the_tokens_it_had_so_far():
    wide, narrow = _backends(limit=24)
    prompts = ["Here is a problem", "2+3", "Compute 48-7"]
    lengths = [len(narrow.encode(p)) for p in prompts]
    assert narrow.context_length == 24 and all(n < 24 for n in lengths) and len(set(lengths)) == 3
    budget = SamplingParams(max_new_tokens=30)  # past the context for every prompt
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the budget
        got = narrow.generate(prompts, budget)
    for prompt, n, [completion] in zip(prompts, lengths, got):
        # The reference: the same prompt alone, asked for exactly the tokens that fit.
        [[expected]] = wide.generate([prompt], SamplingParams(max_new_tokens=24 - n))
        assert completion == expected
        assert completion.tokens_out == 24 - n and completion.finish_reason == "length"
    # Inside the context nothing changes.
    short = SamplingParams(max_new_tokens=5)
    assert narrow.generate(prompts, short) == wide.generate(prompts, short)


def test_a_prompt_that_fills_the_context_alone_is_generated_from_with_one_warning():
    wide, narrow = _backends(limit=8)
    prompt = "Here is a problem and several reasoning steps"
    assert len(narrow.encode(prompt)) > 8
    params = SamplingParams(max_new_tokens=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = narrow.generate([prompt], params)
        narrow.generate([prompt], params)
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        f"narrow: a prompt of {len(narrow.encode(prompt))} tokens plus max_new_tokens=6 exceeds the model's "
        "max_position_embeddings=8; output past that position is unreliable"
    ]
    assert got == wide.generate([prompt], params)


def test_the_context_of_rope_scaled_configs():
    class Config:
        def __init__(self, limit, scaling=None):
            self.max_position_embeddings, self.rope_scaling = limit, scaling

    assert context_length(Config(512)) == 512
    assert context_length(None) is None and context_length(Config(None)) is None
    # YaRN (Qwen2.5): the original length stays in max_position_embeddings.
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert context_length(Config(32768, yarn)) == 131072
    # Llama 3.1: max_position_embeddings is already the scaled length.
    llama3 = {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}
    assert context_length(Config(131072, llama3)) == 131072
    assert context_length(Config(4096, {"type": "linear", "factor": 2.0})) == 8192
