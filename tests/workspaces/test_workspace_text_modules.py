"""The router over backend-driven modules: a calculator, a verifier and an LLM step on a real tiny HF model."""

import pytest
import torch
from tiny_models import build_model, build_tokenizer

from reasonkit.backends.hf import HFBackend
from reasonkit.tasks.arith import evaluate
from reasonkit.types import SamplingParams
from reasonkit.workspaces.gating import reactive_controller
from reasonkit.workspaces.router import GatedRouter
from reasonkit.workspaces.state import WorkspaceState
from reasonkit.workspaces.text_modules import (
    CalculatorModule,
    HashedNgramEncoder,
    LLMStepModule,
    PatternEncoder,
    TextOutput,
    VerifierModule,
    render_history,
)

TEMPLATE = "Question: {question}\nSo far:\n{history}\nNext:"
PARAMS = SamplingParams(max_new_tokens=8)
ENCODER = PatternEncoder(
    [
        ("verified", r"VERIFIED: .*"),
        ("rejected", r"REJECTED: .*"),
        ("error", r"ERROR: .*"),
        ("number", r"-?\d+"),
        ("expression", r"[\d\s()+*-]+"),
    ]
)


@pytest.fixture(scope="module")
def backend():
    tokenizer = build_tokenizer()
    return HFBackend(build_model(tokenizer, "llama", seed=0), tokenizer)


def agent(backend) -> tuple[GatedRouter, LLMStepModule]:
    calculator = CalculatorModule(ENCODER)
    verifier = VerifierModule(ENCODER, check=lambda question, text: not text.startswith("-"))
    llm = LLMStepModule(backend, TEMPLATE, ENCODER, params=PARAMS)
    output = TextOutput(ENCODER)
    modules = [calculator, verifier, llm, output]
    c = ENCODER.index
    rules = [
        (c("expression"), 0),
        (c("number"), 1),
        (c("verified"), 3),
        (c("rejected"), 2),
        (c("error"), 2),
        (c("other"), 3),
    ]
    # An empty workspace has no active feature: the default module (the calculator) starts.
    controller = reactive_controller(ENCODER.dim, len(modules), rules, default=0)
    return GatedRouter(modules, controller, slots=1, width=ENCODER.dim, max_steps=6), llm


def test_router_drives_calculator_verifier_and_llm_step(backend):
    router, llm = agent(backend)
    results = router.run(["3*(4+5)", "7-10", "2+"])

    assert results[0].modules == ("calculator", "verifier", "output")
    assert results[0].answer == "27" and results[0].history == (
        ("calculator", "27"),
        ("verifier", "VERIFIED: 27"),
    )

    # "7-10" is computed, rejected by the verifier, and handed to the LLM with the history so far.
    history = (("calculator", "-3"), ("verifier", "REJECTED: -3"))
    prompt = TEMPLATE.format(question="7-10", text="REJECTED: -3", history=render_history(history))
    expected = backend.generate([prompt], PARAMS)[0][0].text.strip()
    assert ENCODER.category(expected) == "other", f"the tiny model wrote {expected!r}; pick another seed"
    assert results[1].modules == ("calculator", "verifier", "llm", "output")
    assert results[1].history == (*history, ("llm", expected)) and results[1].answer == expected

    # "2+" is not an expression the safe evaluator accepts: the error goes to the LLM.
    assert results[2].modules == ("calculator", "llm", "output")
    assert results[2].history[0][1].startswith("ERROR: ") and results[2].halted
    # Hard routing called the LLM once per item that chose it, never for the first question.
    assert llm.cost.calls == 2 and llm.cost.tokens_out > 0


def test_llm_step_writes_text_and_its_encoding(backend):
    llm = LLMStepModule(backend, "Q: {question} A:", HashedNgramEncoder(dim=32), params=PARAMS)
    state = WorkspaceState.empty(["2+3", "hello"], slots=2, width=32, with_text=True)
    out = llm(state)
    expected = [c[0].text.strip() for c in backend.generate(["Q: 2+3 A:", "Q: hello A:"], PARAMS)]
    assert out.text == tuple(expected)
    assert out.history == ((("llm", expected[0]),), (("llm", expected[1]),))
    torch.testing.assert_close(out.vector[:, 0], HashedNgramEncoder(dim=32).encode(expected))
    assert torch.equal(out.vector[:, 1], torch.zeros(2, 32))  # other slots untouched


def test_calculator_uses_the_safe_evaluator():
    calc = CalculatorModule(ENCODER)
    state = WorkspaceState.empty(
        ["12+30*2", "__import__('os')", "(1+2)*3"], slots=1, width=ENCODER.dim, with_text=True
    )
    out = calc(state)
    assert out.text[0] == str(evaluate("12+30*2")) == "72"
    assert out.text[1].startswith("ERROR: ")
    assert out.text[2] == "9"
    assert out.vector[:, 0].argmax(-1).tolist() == [
        ENCODER.index("number"),
        ENCODER.index("error"),
        ENCODER.index("number"),
    ]


def test_encoders():
    assert ENCODER.categories == ("verified", "rejected", "error", "number", "expression", "other")
    codes = ENCODER.encode([" 42 ", "6*7", "VERIFIED: 42", "the answer", "  "])
    assert codes[:4].argmax(-1).tolist() == [3, 4, 0, 5]
    assert codes.sum(-1).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # blank text = the blank workspace
    hashed = HashedNgramEncoder(dim=64)
    a, b = hashed.encode(["same text", "same text"])
    assert torch.equal(a, b) and a.norm().item() == pytest.approx(1.0)


def test_text_modules_reject_bad_input(backend):
    with pytest.raises(ValueError, match="unique and not 'empty'/'other'"):
        PatternEncoder([("empty", ".*")])
    with pytest.raises(ValueError, match="bad regular expression"):
        PatternEncoder([("x", "(")])
    with pytest.raises(ValueError, match=r"template fields \['answer'\] are unknown"):
        LLMStepModule(backend, "{answer}", ENCODER)
    with pytest.raises(TypeError, match=r"LanguageModel\.generate"):
        LLMStepModule(object(), "{question}", ENCODER)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\.encode\(texts\)"):
        CalculatorModule(object())  # type: ignore[arg-type]
    calc = CalculatorModule(ENCODER)
    with pytest.raises(ValueError, match="list of question strings"):
        calc(WorkspaceState.empty(torch.zeros(2, 3), slots=1, width=ENCODER.dim, with_text=True))
    with pytest.raises(ValueError, match=r"width=encoder\.dim"):
        calc(WorkspaceState.empty(["1+1"], slots=1, width=3, with_text=True))
    router, _ = agent(backend)
    with pytest.raises(ValueError, match="use run"):
        router(["1+1"], "hard")
