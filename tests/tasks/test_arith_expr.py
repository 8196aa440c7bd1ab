"""The safe evaluator and the expression tree: hand-computed values, a reference evaluator, rejections."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkit.tasks.arith.expr import (
    MAX_CHARS,
    ArithExpressionError,
    BinOp,
    Neg,
    Num,
    count_ops,
    evaluate,
    parse,
    render,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7", 7),
        ("3+4*5", 23),  # precedence
        ("(3+4)*5", 35),
        ("10-4-3", 3),  # left associativity
        ("10-(4-3)", 9),
        ("2*3*4", 24),
        ("-7*2", -14),
        ("5-(-3)", 8),
        ("-(3+4)*2", -14),
        (" 1 + 2 ", 3),
        ("3+4*(2-5)", -9),
        ("999*9-(8*67)+0", 8455),
    ],
)
def test_evaluate_hand_computed(text: str, value: int) -> None:
    assert evaluate(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x+1", "names are not allowed"),
        ("abs(-3)", "function calls are not allowed"),
        ("(1).real", "attribute access is not allowed"),
        ("8/2", "division '/' is not allowed"),
        ("8//2", "floor division"),
        ("2**10", "power '**' is not allowed"),
        ("7%3", "modulo"),
        ("1<2", "comparisons are not allowed"),
        ("1.5+1", "only integer literals"),
        ("True+1", "only integer literals"),
        ("0x10", "plain decimal digits"),
        ("1_000", "plain decimal digits"),
        ("+3", "only unary minus"),
        ("~3", "only unary minus"),
        ("3+", "not a valid arithmetic expression"),
        ("", "empty expression"),
        ("__import__('os')", "not allowed"),
        ("[1][0]", "not allowed"),
        ("9" * 31, "integer literal too long"),
        ("1+" * 1100 + "1", "expression too long"),
        ("1+" * 400 + "1", "too deep"),
        ("(" * 250 + "1" + ")" * 250, "not a valid arithmetic expression"),
    ],
)
def test_evaluate_rejects_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ArithExpressionError, match=message.replace("(", r"\(").replace("*", r"\*")):
        evaluate(text)


def test_evaluate_rejects_non_strings_and_huge_values() -> None:
    with pytest.raises(ArithExpressionError, match="must be a string"):
        evaluate(12)  # type: ignore[arg-type]
    assert len("*".join(["9" * 30] * 60)) < MAX_CHARS
    with pytest.raises(ArithExpressionError, match="too large"):
        evaluate("*".join(["9" * 30] * 60))  # ~1800 digits


# ---------------------------------------------------------------- trees against a reference


def _trees(max_leaves: int = 10) -> st.SearchStrategy:
    leaves = st.integers(min_value=-999, max_value=999).map(Num)
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.tuples(st.sampled_from("+-*"), kids, kids).map(lambda t: BinOp(t[0], t[1], t[2])),
            kids.filter(lambda k: not isinstance(k, (Num, Neg))).map(Neg),
        ),
        max_leaves=max_leaves,
    )


def _reference(node) -> int:
    """An independent evaluator of the tree (the definition of what the text must mean)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        return -_reference(node.operand)
    a, b = _reference(node.left), _reference(node.right)
    return {"+": a + b, "-": a - b, "*": a * b}[node.op]


@settings(max_examples=300, deadline=None)
@given(_trees())
def test_render_parse_round_trip_and_value(tree) -> None:
    text = render(tree)
    assert parse(text) == tree  # the canonical text encodes exactly this tree
    assert evaluate(text) == _reference(tree)


def test_render_is_canonical() -> None:
    assert render(parse("(3*4)+((5))")) == "3*4+5"
    assert render(parse("2*(-7)")) == "2*(-7)"
    assert render(parse("2*-7")) == "2*(-7)"
    assert render(parse("-7")) == "-7"
    assert render(parse("1-(2+3)")) == "1-(2+3)"
    assert render(parse("(1-2)+3")) == "1-2+3"
    assert render(parse("2*(3*4)")) == "2*(3*4)"
    assert render(parse("--5")) == "5"


def test_count_ops() -> None:
    assert count_ops(parse("7")) == 0
    assert count_ops(parse("-7")) == 0
    assert count_ops(parse("3+4*(2-5)")) == 3
    assert count_ops(parse("-(3+4)")) == 1
