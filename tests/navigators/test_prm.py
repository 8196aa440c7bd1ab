"""Process reward model input formats and scores, with tiny random transformers models.

The real PRMs (Math-Shepherd Mistral-7B, Qwen2.5-Math-PRM-7B) cannot be downloaded here; tiny
random models with the same heads and tokenizers holding the same marker tokens exercise exactly
the code path the real ones take, and the scores are checked against a hand-written reference.
"""

from __future__ import annotations

import pytest
import torch
from navigator_helpers import tiny_llama, tiny_tokenizer
from transformers import Qwen2Config, Qwen2ForTokenClassification

from reasonkit.backends.base import CapabilityError
from reasonkit.navigators.prm import MathShepherdPRM, PRMError, QwenMathPRM, load_prm
from reasonkit.navigators.rewards import PRMReward
from reasonkit.types import Problem

QUESTION = "What is 2+3*4?"
STEPS = ["3*4=12", "2+12=14", "The answer is 14"]


@pytest.fixture(scope="module")
def shepherd():
    tokenizer = tiny_tokenizer(extra_tokens=["ки"])
    return MathShepherdPRM(tiny_llama(tokenizer, seed=3), tokenizer)


@pytest.fixture(scope="module")
def qwen_prm():
    tokenizer = tiny_tokenizer(extra_tokens=["<extra_0>"])
    torch.manual_seed(4)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_labels=2, pad_token_id=0,
    )  # fmt: skip
    return QwenMathPRM(Qwen2ForTokenClassification(config).eval(), tokenizer)


def test_math_shepherd_input_format(shepherd):
    assert shepherd.format(QUESTION, STEPS) == (
        "What is 2+3*4? Step 1: 3*4=12 ки\nStep 2: 2+12=14 ки\nStep 3: The answer is 14 ки"
    )
    # A tag inside a step would fake a step boundary; it is removed.
    assert shepherd.format("q", ["a ки b"]) == "q Step 1: a  b ки"


def test_math_shepherd_scores_are_p_plus_at_each_tag(shepherd):
    tok, model = shepherd.tokenizer, shepherd.model
    ids = tok(shepherd.format(QUESTION, STEPS), add_special_tokens=False)["input_ids"]
    tag = tok.convert_tokens_to_ids("ки")
    good, bad = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]  # (T, V)
    expected = [
        torch.softmax(logits[i, [good, bad]], dim=-1)[0].item() for i, t in enumerate(ids) if t == tag
    ]
    assert len(expected) == 3
    assert shepherd.step_scores(QUESTION, STEPS) == pytest.approx(expected, abs=1e-6)


def test_math_shepherd_batches_like_single_inputs(shepherd):
    items = [(QUESTION, STEPS), ("1+1?", ["1+1=2"]), ("empty", [])]
    batched = shepherd.scores_many(items)
    assert batched[2] == []
    for (q, s), got in zip(items[:2], batched[:2]):
        assert got == pytest.approx(shepherd.step_scores(q, s), abs=1e-5)
    assert shepherd.last_step_scores(items) == pytest.approx([batched[0][-1], batched[1][-1], 0.0], abs=1e-6)


def test_math_shepherd_drops_the_oldest_steps_past_max_tokens(shepherd):
    full = len(shepherd.tokenizer(shepherd.format(QUESTION, STEPS), add_special_tokens=False)["input_ids"])
    short = MathShepherdPRM(shepherd.model, shepherd.tokenizer, max_tokens=full - 1)
    ids, positions = short.encode(QUESTION, STEPS)
    assert len(ids) <= full - 1 and 1 <= len(positions) < 3
    kept = len(positions)
    assert short.tokenizer.decode(ids).endswith(f"Step 3: {STEPS[-1]} ки")
    reference = shepherd.model(torch.tensor([ids])).logits[0, positions[-1]][shepherd.candidates]
    assert short.step_scores(QUESTION, STEPS)[-1] == pytest.approx(reference.softmax(-1)[0].item(), abs=1e-6)
    assert len(short.step_scores(QUESTION, STEPS)) == kept


def test_qwen_prm_input_format(qwen_prm):
    text = qwen_prm.format(QUESTION, STEPS)
    assert text == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n"
        "<|im_start|>assistant\n3*4=12<extra_0>2+12=14<extra_0>The answer is 14<extra_0><|im_end|>\n"
    )


def test_qwen_prm_scores_are_p_class1_at_each_separator(qwen_prm):
    tok = qwen_prm.tokenizer
    ids = tok(qwen_prm.format(QUESTION, STEPS), add_special_tokens=False)["input_ids"]
    sep = tok.convert_tokens_to_ids("<extra_0>")
    with torch.no_grad():
        probs = torch.softmax(qwen_prm.model(torch.tensor([ids])).logits[0], dim=-1)  # (T, 2)
    expected = [probs[i, 1].item() for i, t in enumerate(ids) if t == sep]
    assert len(expected) == 3
    assert qwen_prm.step_scores(QUESTION, STEPS) == pytest.approx(expected, abs=1e-6)


def test_prm_reward_scores_the_last_step(shepherd):
    problem = Problem(id="p", question=QUESTION, answer="14", kind="int")
    reward = PRMReward(shepherd)
    assert reward.name.startswith("prm:math-shepherd")
    got = reward([problem, problem], [STEPS[:1], STEPS], [(0,) * 7, (0,) * 7])
    assert got == pytest.approx(
        [shepherd.step_scores(QUESTION, STEPS[:1])[-1], shepherd.step_scores(QUESTION, STEPS)[-1]], abs=1e-5
    )


def test_tokenizer_without_the_marker_token_fails_clearly():
    tokenizer = tiny_tokenizer()  # "ки" is not one token here
    with pytest.raises(PRMError, match="must be one token"):
        MathShepherdPRM(tiny_llama(tokenizer), tokenizer)


def test_black_box_backend_cannot_host_a_prm():
    class Server:
        name, capabilities = "http-model", frozenset({"chat"})

    with pytest.raises(CapabilityError, match=r"needs the model itself.*runs no local model"):
        MathShepherdPRM.from_backend(Server())


@pytest.mark.parametrize("spec", ["peiyi9979/math-shepherd-mistral-7b-prm", "shepherd:x", "qwen-prm:"])
def test_bad_prm_spec(spec):
    with pytest.raises(PRMError, match="FORMAT:MODEL"):
        load_prm(spec)


def test_prm_reward_inside_the_environment(shepherd, tiny_hf_backend):
    """A non-terminal step is rewarded with the PRM's score of the step the block just wrote."""
    from navigator_helpers import short_pack

    from reasonkit.navigators.env import ThoughtEnv

    problem = Problem(id="p", question="2+3*4", answer="14", kind="arith")
    pack = short_pack(5).with_overrides({"calls": {"final_check": {"max_new_tokens": 1}}})
    env = ThoughtEnv([problem], tiny_hf_backend, pack=pack, reward=PRMReward(shepherd))
    env.reset(seed=0)
    _, reward, done, _, info = env.step(0)
    if done:
        pytest.skip("the random model's final-answer check said yes")
    assert env.episode is not None and len(env.episode.steps) == 1
    assert reward == pytest.approx(shepherd.step_scores("2+3*4", env.episode.steps)[-1], abs=1e-5)
    assert info["block"] == "reason"
