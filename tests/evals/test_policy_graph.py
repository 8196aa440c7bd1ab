"""The learned policy read from traces: accuracy by block sequence and the block-transition graph,
against hand-counted figures."""

from __future__ import annotations

import networkx as nx
import pytest

from reasonkit.evals.policy_graph import (
    draw_transition_graph,
    sequence_rows,
    transition_graph,
    write_graphml,
)
from reasonkit.types import Cost, Trace


def _trace(i: int, blocks: list[str], correct: bool, tokens: int = 10) -> Trace:
    return Trace(f"p{i}", (), "1", correct, Cost(calls=1, tokens_in=tokens, tokens_out=0), {"blocks": blocks})


# 6 problems: terminate at once (3: 2 right), reason then terminate (2: both right),
# reason, refine, then the depth limit (1: wrong)
TRACES = [
    _trace(0, ["terminate"], True, 10),
    _trace(1, ["terminate"], True, 20),
    _trace(2, ["terminate"], False, 30),
    _trace(3, ["reason", "terminate"], True, 40),
    _trace(4, ["reason", "terminate"], True, 60),
    _trace(5, ["reason", "refine"], False, 100),
]


def test_accuracy_by_block_sequence_is_hand_counted():
    rows = sequence_rows(TRACES)
    assert [(r["sequence"], r["n"]) for r in rows] == [
        ("terminate", 3),
        ("reason,terminate", 2),
        ("reason,refine", 1),
    ]
    first, second, third = rows
    assert first["share"] == pytest.approx(0.5) and first["accuracy"] == pytest.approx(2 / 3)
    assert first["tokens_per_problem"] == pytest.approx(20)
    assert second["accuracy"] == 1.0 and second["tokens_per_problem"] == pytest.approx(50)
    assert third["accuracy"] == 0.0


def test_transition_graph_shares_and_success_rates_are_hand_counted():
    g = transition_graph(TRACES)
    assert g.nodes["start"]["visits"] == 6
    assert g.nodes["1:reason"]["visits"] == 3 and g.nodes["end"]["visits"] == 1
    edges = {(a, b): (d["count"], d["share"], d["success"]) for a, b, d in g.edges(data=True)}
    assert edges == {
        ("start", "1:terminate"): (3, pytest.approx(0.5), pytest.approx(2 / 3)),
        ("start", "1:reason"): (3, pytest.approx(0.5), pytest.approx(2 / 3)),
        ("1:reason", "2:terminate"): (2, pytest.approx(2 / 3), 1.0),
        ("1:reason", "2:refine"): (1, pytest.approx(1 / 3), 0.0),
        ("2:refine", "end"): (1, 1.0, 0.0),  # stopped without terminate (here: the depth limit)
    }
    # shares out of every node that is not a stop add up to 1
    for node in ("start", "1:reason", "2:refine"):
        assert sum(d["share"] for _, _, d in g.out_edges(node, data=True)) == pytest.approx(1.0)


def test_graph_files_are_graphml_and_png(tmp_path):
    g = transition_graph(TRACES)
    write_graphml(g, tmp_path / "policy.graphml")
    back = nx.read_graphml(tmp_path / "policy.graphml")
    assert set(back.edges) == set(g.edges)
    assert back.edges["1:reason", "2:terminate"]["count"] == 2
    draw_transition_graph(g, tmp_path / "policy.png", title="test", min_share=0.2)
    assert (tmp_path / "policy.png").read_bytes()[:4] == b"\x89PNG"


def test_a_trace_without_blocks_is_refused():
    with pytest.raises(ValueError, match="not an RLoT trace"):
        transition_graph([Trace("p0", (), "1", True)])


def test_an_edge_that_skips_a_column_is_labelled_on_its_arc_not_on_the_node_it_passes():
    from reasonkit.evals.policy_graph import _arc_middle
    from reasonkit.plots import pyplot

    fig, ax = pyplot().subplots(figsize=(6, 4))
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(-2, 2)
    assert _arc_middle(ax, (1.0, 0.0), (3.0, 0.0), 0.0) == pytest.approx((2.0, 0.0))  # a straight edge
    x, y = _arc_middle(ax, (1.0, 0.0), (3.0, 0.0), 0.3)  # the node at (2, 0) is skipped: label below it
    assert x == pytest.approx(2.0) and y < -0.3
    # matplotlib's own arc3 path passes through that point (its Bezier middle)
    from matplotlib.patches import ConnectionStyle

    display = ax.transData.transform([(1.0, 0.0), (3.0, 0.0)])
    path = ConnectionStyle.Arc3(rad=0.3)(tuple(display[0]), tuple(display[1]), shrinkA=0, shrinkB=0)
    start, control, end = path.vertices[:3]
    middle = ax.transData.inverted().transform((start + 2 * control + end) / 4)
    assert (x, y) == pytest.approx(tuple(middle))
    pyplot().close(fig)
