"""Integer arithmetic expressions: the safe evaluator, a small expression tree, canonical rendering.

Nothing here calls ``eval``/``exec``. Text is parsed with :func:`ast.parse` (which only builds a syntax
tree) and every node is checked against a whitelist: integer literals written as plain decimal digits,
binary ``+``, ``-``, ``*``, unary minus and parentheses. Anything else (names, calls, attributes,
division, powers, floats, ``0x10``, ``1_000``, comparisons …) raises :class:`ArithExpressionError` with
one message that names the offending piece. Sizes are capped so no input can make parsing or
arithmetic expensive.

    >>> evaluate("3+4*(2-5)")
    -9
    >>> render(parse("(3*4)+((5))"))
    '3*4+5'

The tree (:class:`Num`, :class:`BinOp`, :class:`Neg`) is what the arith task reasons about: a
negative literal ``-7`` is a :class:`Num`, not a negation, and :func:`render` writes the unique
canonical text of a tree (minimal parentheses, negative literals as ``(-7)`` unless the whole
expression is that literal), so ``parse(render(t)) == t`` for every tree.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

MAX_CHARS = 2000  # longest text the evaluator accepts
MAX_DIGITS = 30  # longest integer literal
MAX_DEPTH = 300  # deepest chain of operations in the tree (a flat a+b+…+z is as deep as it is long)
MAX_RESULT_DIGITS = 200  # largest intermediate value, in decimal digits

OPS: tuple[str, ...] = ("+", "-", "*")
_PLAIN = re.compile(r"[0-9+\-*() \t]*")
_AST_OPS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}
_OP_NAMES: dict[type, str] = {
    ast.Div: "division '/'",
    ast.FloorDiv: "floor division '//'",
    ast.Mod: "modulo '%'",
    ast.Pow: "power '**'",
    ast.MatMult: "matrix product '@'",
    ast.LShift: "shift '<<'",
    ast.RShift: "shift '>>'",
    ast.BitAnd: "bitwise '&'",
    ast.BitOr: "bitwise '|'",
    ast.BitXor: "bitwise '^'",
}


class ArithExpressionError(ValueError):
    """Text is not an allowed integer arithmetic expression; the message says what is wrong."""


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class BinOp:
    op: str  # one of OPS
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg:
    """Unary minus of a non-literal (``-(3+4)``); a minus sign on a literal folds into :class:`Num`."""

    operand: Node


Node = Num | BinOp | Neg


def negate(node: Node) -> Node:
    """``-node``, folding literals so that ``-7`` stays a :class:`Num`."""
    if isinstance(node, Num):
        return Num(-node.value)
    if isinstance(node, Neg):
        return node.operand
    return Neg(node)


def parse(text: str) -> Node:
    """Parse ``text`` into a tree, or raise :class:`ArithExpressionError` naming what is not allowed."""
    if not isinstance(text, str):
        raise ArithExpressionError(f"an expression must be a string, got {type(text).__name__}")
    return _parse(text)


@lru_cache(maxsize=1 << 16)  # trees are immutable, and the teacher re-reads the same steps constantly
def _parse(text: str) -> Node:
    if len(text) > MAX_CHARS:
        raise ArithExpressionError(f"expression too long: {len(text)} characters (limit {MAX_CHARS})")
    if not text.strip():
        raise ArithExpressionError("empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArithExpressionError(f"not a valid arithmetic expression: {_short(text)} ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise ArithExpressionError(f"expression nested too deeply: {_short(text)}") from None
    # Only digits, operators, parentheses and spaces: no literal can be 0x10, 1_000, 1.5 or a name.
    plain = _PLAIN.fullmatch(text) is not None
    return _convert(tree.body, None if plain else text.strip(), 0)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:60]) + "…"


def _convert(node: ast.AST, source: str | None, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise ArithExpressionError(f"expression too deep: more than {MAX_DEPTH} levels of operations")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArithExpressionError(f"only integer literals are allowed, got {value!r}")
        literal = str(value) if source is None else ast.get_source_segment(source, node) or ""
        if not literal.isdigit() or not literal.isascii():
            # 0x10, 0o7, 1_000: valid Python integers, but not plain decimal arithmetic.
            raise ArithExpressionError(f"integer literals must be plain decimal digits, got {literal!r}")
        if len(literal) > MAX_DIGITS:
            raise ArithExpressionError(
                f"integer literal too long: {len(literal)} digits (limit {MAX_DIGITS})"
            )
        return Num(value)
    if isinstance(node, ast.BinOp):
        op = _AST_OPS.get(type(node.op))
        if op is None:
            name = _OP_NAMES.get(type(node.op), type(node.op).__name__)
            raise ArithExpressionError(f"{name} is not allowed; only +, - and * are")
        return BinOp(op, _convert(node.left, source, depth + 1), _convert(node.right, source, depth + 1))
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub):
            raise ArithExpressionError(f"unary {type(node.op).__name__} is not allowed; only unary minus is")
        return negate(_convert(node.operand, source, depth + 1))
    raise ArithExpressionError(_describe(node))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"names are not allowed (found {node.id!r}); use integer literals only"
    if isinstance(node, ast.Call):
        return "function calls are not allowed"
    if isinstance(node, ast.Attribute):
        return f"attribute access is not allowed (found .{node.attr})"
    if isinstance(node, ast.Compare):
        return "comparisons are not allowed"
    if isinstance(node, ast.Subscript):
        return "indexing is not allowed"
    return f"{type(node).__name__} is not allowed; only integers, +, -, *, unary minus and parentheses are"


def value_of(node: Node) -> int:
    """The integer a tree evaluates to (intermediate values capped at MAX_RESULT_DIGITS digits)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        return -value_of(node.operand)
    a, b = value_of(node.left), value_of(node.right)
    result = a + b if node.op == "+" else a - b if node.op == "-" else a * b
    if result.bit_length() > MAX_RESULT_DIGITS * 3.33:
        raise ArithExpressionError(f"intermediate result too large (more than ~{MAX_RESULT_DIGITS} digits)")
    return result


def evaluate(expr: str) -> int:
    """The value of an integer expression with +, -, *, unary minus and parentheses; never runs code."""
    return value_of(parse(expr))


# Precedence of what a node renders as: literals bind tightest, then unary minus, *, then + and -.
def _precedence(node: Node) -> int:
    if isinstance(node, BinOp):
        return 1 if node.op in "+-" else 2
    return 3 if isinstance(node, Neg) else 4


def render(node: Node) -> str:
    """The canonical text of a tree: minimal parentheses, negative literals as ``(-7)``."""
    if isinstance(node, Num) and node.value < 0:
        return str(node.value)
    return _render(node)


def _render(node: Node) -> str:
    if isinstance(node, Num):
        return str(node.value) if node.value >= 0 else f"({node.value})"
    if isinstance(node, Neg):
        inner = _render(node.operand)
        return f"-({inner})" if _precedence(node.operand) < 3 else f"-{inner}"
    mine = _precedence(node)
    left = _render(node.left)
    if _precedence(node.left) < mine:
        left = f"({left})"
    right = _render(node.right)
    # Same-precedence right operands keep their parentheses: a-(b+c) and a*(b*c) are different trees.
    if _precedence(node.right) <= mine:
        right = f"({right})"
    return f"{left}{node.op}{right}"


def count_ops(node: Node) -> int:
    """Binary operations left to evaluate (a negation folds into its operand's result for free)."""
    if isinstance(node, Num):
        return 0
    if isinstance(node, Neg):
        return count_ops(node.operand)
    return 1 + count_ops(node.left) + count_ops(node.right)


def is_literal(node: Node) -> bool:
    return isinstance(node, Num)
