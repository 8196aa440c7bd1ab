"""Layer paths as move sequences: round trips, the canonical parse, limits, and the size of the space."""

from __future__ import annotations

import functools
import itertools
import random

import pytest

from reasonkit.cola.grammar import LayerGrammar, Move, PathState, format_path, read_path


def reference_space(
    num_layers: int, max_block: int = 4, ops: tuple[int, ...] = (0, 1, 2)
) -> set[tuple[int, ...]]:
    """Every path PoLar's segment grammar writes, by brute force over segmentations (deep notes §3.8)."""

    @functools.cache
    def paths(cursor: int) -> frozenset[tuple[int, ...]]:
        if cursor == num_layers:
            return frozenset({()})
        out = set()
        for size in range(1, min(max_block, num_layers - cursor) + 1):
            block = tuple(range(cursor, cursor + size))
            for rest in paths(cursor + size):
                out.update(block * times + rest for times in ops)
        return frozenset(out)

    return set(paths(0))


def all_move_sequences(grammar: LayerGrammar) -> list[tuple[Move, ...]]:
    found = []

    def walk(state: PathState) -> None:
        if grammar.is_terminal(state):
            found.append(state.moves)
            return
        for move in grammar.legal_moves(state):
            walk(grammar.apply(state, move))

    walk(PathState())
    return found


def test_the_eight_layer_space_is_the_one_the_notes_counted():
    grammar = LayerGrammar(8)
    paths = grammar.enumerate_paths()
    reference = reference_space(8)
    assert len(reference) == 15_596  # deep notes §3.8, the empty path included
    assert set(paths) == reference - {()}  # min_length=1 drops the empty path
    assert paths == sorted(paths, key=lambda p: (len(p), p))


@pytest.mark.parametrize(
    "grammar",
    [
        LayerGrammar(5),
        LayerGrammar(5, ops=("skip", "keep")),
        LayerGrammar(5, ops=("keep", "repeat")),
        LayerGrammar(5, block_moves="root"),
        LayerGrammar(5, max_uses=3, max_block=2),
        LayerGrammar(5, min_length=4, max_length=7),
    ],
    ids=["default", "skip-only", "repeat-only", "root-blocks", "thrice", "bounded"],
)
def test_every_path_round_trips_and_every_move_sequence_parses_to_its_canonical_form(grammar):
    paths = grammar.enumerate_paths()
    assert paths
    for path in paths:
        moves = grammar.parse(path)
        assert grammar.build(moves) == path
        assert grammar.min_length <= len(path) <= grammar.upper_length
        assert all(path.count(layer) <= grammar.max_uses for layer in path)
    by_path: dict[tuple[int, ...], list[tuple[Move, ...]]] = {}
    for moves in all_move_sequences(grammar):
        by_path.setdefault(grammar.build(moves), []).append(moves)
    assert set(by_path) == set(paths)
    for path, ways in by_path.items():
        canonical = grammar.parse(path)
        assert canonical in ways
        assert len(canonical) == min(len(w) for w in ways)  # fewest moves first


def test_sampled_eight_layer_paths_round_trip():
    grammar = LayerGrammar(8)
    for path in random.Random(0).sample(grammar.enumerate_paths(), 300):
        assert grammar.build(grammar.parse(path)) == path


def test_ops_restrict_the_space_as_the_ablations_need():
    assert len(LayerGrammar(8, ops=("skip", "keep")).enumerate_paths()) == 2**8 - 1  # every non-empty subset
    repeat_only = LayerGrammar(8, ops=("keep", "repeat")).enumerate_paths()
    assert set(repeat_only) == reference_space(8, ops=(1, 2))
    assert all(set(p) == set(range(8)) for p in repeat_only)  # nothing skipped


def test_parse_breaks_ties_as_polar_does():
    grammar = LayerGrammar(8)
    assert grammar.parse(range(8)) == (Move(4, 1), Move(4, 1))  # fewest moves, larger blocks first
    assert str(grammar.parse((0, 1, 1, 2, 3, 4, 5, 7))) == "(keep1, rep1, keep4, skip1, keep1)"
    assert grammar.parse((0, 1, 0, 1, 2, 3, 4, 5, 6, 7)) == (Move(2, 2), Move(4, 1), Move(2, 1))


def test_limits_are_enforced_with_errors_that_say_which():
    grammar = LayerGrammar(8)
    with pytest.raises(ValueError, match="more than max_uses=2"):
        grammar.parse((0, 0, 0, 1, 2, 3, 4, 5, 6, 7))
    assert LayerGrammar(8, max_uses=3).build(["rep1x3", "keep4", "keep3"]) == (0, 0, 0, *range(1, 8))
    with pytest.raises(ValueError, match=r"allows 1\.\.16"):
        grammar.parse(())
    with pytest.raises(ValueError, match=r"outside 0\.\.7"):
        grammar.parse((0, 8))
    with pytest.raises(ValueError, match="cannot be written"):
        grammar.parse((1, 0))  # the cursor only moves forward
    with pytest.raises(ValueError, match="not legal"):
        grammar.build([Move(4, 1), Move(4, 1), Move(1, 1)])  # past the last layer
    bounded = LayerGrammar(8, min_length=6, max_length=9)
    assert all(6 <= len(p) <= 9 for p in bounded.enumerate_paths())
    assert Move(4, 0) in bounded.legal_moves(PathState())  # 4 layers can still follow
    after = bounded.apply(PathState(), Move(4, 0))
    assert Move(1, 0) in bounded.legal_moves(after)  # 3 layers left, each twice: 6 is still reachable
    assert Move(2, 0) not in bounded.legal_moves(after)  # 2 left: at most 4 layers, short of 6
    assert bounded.complete(bounded.apply(PathState(), Move(4, 2))) == (0, 1, 2, 3, 0, 1, 2, 3, 4)


def test_root_only_blocks_allow_single_layers_below_the_root():
    grammar = LayerGrammar(8, block_moves="root")
    state = grammar.apply(PathState(), Move(3, 0))
    assert {m.size for m in grammar.legal_moves(state)} == {1}
    with pytest.raises(ValueError, match="larger than one only at the root"):
        grammar.parse((0, 1, 2, 3, 4, 5, 6, 7, 6, 7))  # a 2-layer repeat at the end


def test_stopping_keeps_the_remaining_layers():
    grammar = LayerGrammar(8)
    assert grammar.complete(PathState()) == tuple(range(8))
    assert grammar.build(["keep2", "skip1"]) == (0, 1, 3, 4, 5, 6, 7)
    assert grammar.build(["rep1"]) == (0, 0, *range(1, 8))


def test_moves_and_paths_read_back_from_their_text():
    for move in LayerGrammar(8, max_uses=3).all_moves():
        assert Move.parse(str(move)) == move
    for bad in ("keep", "rep0", "skip2x2", "jump1"):
        with pytest.raises(ValueError, match="not a move"):
            Move.parse(bad)
    for path in [(), (0,), (0, 1, 1, 7)]:
        assert read_path(format_path(path)) == path
    with pytest.raises(ValueError, match="not a layer path"):
        read_path("0,a")


def test_bad_grammars_are_refused():
    for kwargs, message in [
        ({"num_layers": 0}, "num_layers"),
        ({"num_layers": 4, "ops": ("skip",)}, "includes keep"),
        ({"num_layers": 4, "max_uses": 1}, "max_uses >= 2"),
        ({"num_layers": 4, "min_length": 9}, "are empty"),
        ({"num_layers": 4, "block_moves": "leaves"}, "block_moves"),
    ]:
        with pytest.raises(ValueError, match=message):
            LayerGrammar(**kwargs)  # type: ignore[arg-type]


def test_all_moves_is_a_fixed_action_list():
    grammar = LayerGrammar(8)
    moves = grammar.all_moves()
    assert len(moves) == 12 and len(set(moves)) == 12
    assert list(itertools.chain(moves)) == sorted(moves, key=lambda m: (m.size, m.times))
