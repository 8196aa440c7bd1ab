"""A navigator's learned policy, read from its traces: block sequences and the block-transition graph.

Every RLoT trace records the blocks the navigator chose (``trace.meta["blocks"]``, ending in
``terminate`` unless the episode stopped without it). From a set of traces this module builds

* :func:`sequence_rows` — each distinct block sequence: how many problems took it, its share, its
  accuracy and tokens (the "accuracy by block sequence" table of ``reasonkit eval navigator``);
* :func:`transition_graph` — a networkx ``DiGraph`` with a ``start`` node, one node per (step, block)
  and an ``end`` node for episodes that stopped without terminate (the problem was solved to a
  number, or the depth limit); each edge carries ``count``, ``share`` (of the problems
  that reached its source node) and ``success`` (accuracy of the problems that took it);
* :func:`draw_transition_graph` — that graph as a PNG a person reads at a glance: steps left to
  right, edge width by share, each edge labelled "share · success".

    from reasonkit.evals.policy_graph import transition_graph, draw_transition_graph
    g = transition_graph(result.traces)
    draw_transition_graph(g, "policy.png", title="builtin-arith on 400 test problems")
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from reasonkit.types import Trace

START, END = "start", "end"


def blocks_of(trace: Trace) -> tuple[str, ...]:
    blocks = trace.meta.get("blocks")
    if blocks is None:
        raise ValueError(f"trace of problem {trace.problem_id!r} has no meta['blocks']: not an RLoT trace")
    return tuple(str(b) for b in blocks)


def sequence_rows(traces: Sequence[Trace]) -> list[dict[str, Any]]:
    """One row per distinct block sequence, most common first (ties: by the sequence)."""
    groups: dict[tuple[str, ...], list[Trace]] = defaultdict(list)
    for t in traces:
        groups[blocks_of(t)].append(t)
    rows = [
        {
            "sequence": ",".join(seq) or "(none)",
            "n": len(ts),
            "share": len(ts) / len(traces),
            "accuracy": sum(bool(t.correct) for t in ts) / len(ts),
            "tokens_per_problem": sum(t.cost.tokens for t in ts) / len(ts),
        }
        for seq, ts in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r["n"], r["sequence"]))


def _node(step: int, block: str) -> str:
    return block if block in (START, END) else f"{step}:{block}"


def transition_graph(traces: Sequence[Trace]) -> Any:
    """The block-transition graph of ``traces`` (see the module doc); node attributes ``block``,
    ``step``, ``visits``; edge attributes ``count``, ``share``, ``success``."""
    import networkx as nx

    visits: Counter[str] = Counter()
    edges: Counter[tuple[str, str]] = Counter()
    correct: Counter[tuple[str, str]] = Counter()
    for t in traces:
        blocks = blocks_of(t)
        path = [START, *(_node(i + 1, b) for i, b in enumerate(blocks))]
        if not blocks or blocks[-1] != "terminate":
            path.append(END)  # stopped without terminate: solved to a number, or the depth limit
        visits.update(path)
        for edge in pairwise(path):
            edges[edge] += 1
            correct[edge] += int(bool(t.correct))
    graph = nx.DiGraph()
    for node, n in visits.items():
        step, _, block = node.partition(":") if ":" in node else ("0", "", node)
        graph.add_node(node, block=block, step=int(step) if node != END else -1, visits=n)
    for (a, b), n in edges.items():
        graph.add_edge(a, b, count=n, share=n / visits[a], success=correct[(a, b)] / n)
    return graph


def write_graphml(graph: Any, path: str | Path) -> None:
    """``graph`` as GraphML, written atomically (networkx's own writer, read back with ``nx.read_graphml``)."""
    import networkx as nx

    from reasonkit.rundir import atomic_write_text

    atomic_write_text(Path(path), "\n".join(nx.generate_graphml(graph)) + "\n")


def _arc_middle(ax: Any, a: tuple[float, float], b: tuple[float, float], rad: float) -> tuple[float, float]:
    """The middle of matplotlib's ``arc3,rad`` curve from ``a`` to ``b`` (a quadratic Bezier whose
    control point is the chord's middle moved ``rad`` x the chord, perpendicular, in display space)."""
    to_display = ax.transData
    (x0, y0), (x1, y1) = to_display.transform(a), to_display.transform(b)
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    middle = ((x0 + 2 * cx + x1) / 4, (y0 + 2 * cy + y1) / 4)
    x, y = to_display.inverted().transform(middle)
    return float(x), float(y)


def draw_transition_graph(graph: Any, path: str | Path, *, title: str, min_share: float = 0.0) -> None:
    """Draw ``graph`` (from :func:`transition_graph`) to a PNG: one column per step, edge width by
    share; edges below ``min_share`` of their source's problems are left out (the title says so)."""
    from reasonkit.plots import pyplot, save_figure

    plt = pyplot()
    steps = sorted({d["step"] for _, d in graph.nodes(data=True) if d["step"] >= 0})
    last = (steps[-1] if steps else 0) + 1
    by_step: dict[int, list[str]] = defaultdict(list)
    for node, d in sorted(graph.nodes(data=True), key=lambda x: (x[1]["step"], x[1]["block"])):
        by_step[d["step"] if d["step"] >= 0 else last].append(node)
    pos = {
        node: (float(step), (len(nodes) - 1) / 2 - i)
        for step, nodes in by_step.items()
        for i, node in enumerate(nodes)
    }
    height = max(len(v) for v in by_step.values()) if by_step else 1
    fig, ax = plt.subplots(figsize=(2.2 * (last + 1), 1.3 * height + 1.2))
    colors = {"reason": "#4c72b0", "decompose": "#dd8452", "debate": "#8172b3", "refine": "#55a868",
              "terminate": "#c44e52", START: "#999999", END: "#999999"}  # fmt: skip
    ax.set_xlim(-0.5, last + 0.5)  # limits first: the edge labels are placed in display space
    ax.set_ylim(-height / 2 - 0.3, height / 2 + 0.3)
    for a, b, d in graph.edges(data=True):
        if d["share"] < min_share:
            continue
        # an edge that skips a column (to "ended") bends around the nodes standing in that column
        rad = 0.08 if pos[b][0] - pos[a][0] <= 1 else 0.3
        ax.annotate(
            "", xy=pos[b], xytext=pos[a],
            arrowprops={"arrowstyle": "-|>", "lw": 0.5 + 6 * d["share"], "color": "#555555", "alpha": 0.7,
                        "shrinkA": 22, "shrinkB": 22, "connectionstyle": f"arc3,rad={rad}"},
        )  # fmt: skip
        ax.text(*_arc_middle(ax, pos[a], pos[b], rad), f"{d['share']:.0%} · {d['success']:.0%} ok",
                ha="center", va="center", fontsize=7, color="#222222",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
    for node, d in graph.nodes(data=True):
        x, y = pos[node]
        label = "ended" if node == END else d["block"]
        ax.scatter([x], [y], s=2600, color=colors.get(d["block"], "#cccccc"), zorder=3)
        ax.text(
            x, y, f"{label}\n{d['visits']}", ha="center", va="center", fontsize=6.5, color="white", zorder=4
        )
    ax.set_xticks(range(last + 1))
    ax.set_xticklabels(["start", *(f"block {s}" for s in range(1, last)), "stop"])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    note = f" (edges under {min_share:.0%} of their source hidden)" if min_share else ""
    ax.set_title(
        f"{title}\nedge: share of the problems at its source · their accuracy{note}; "
        "ended: stopped without terminate",
        fontsize=9,
    )
    save_figure(fig, path)
