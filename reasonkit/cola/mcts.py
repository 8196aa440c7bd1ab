"""Monte Carlo tree search over layer paths for one problem (CoLa, arXiv 2507.07996).

The tree's nodes are move prefixes of :class:`~reasonkit.cola.grammar.LayerGrammar`; a node stands
for the whole path that stopping there gives (:meth:`LayerGrammar.complete`: the remaining layers
kept), so the root is the model's own path and every node can be scored. One simulation:

- ``_select``: from the root, while the node has been scored and is not terminal: with probability
  ``random_expand`` (or always, when it has no children yet) expand a random untried move and stop
  there; otherwise descend to the child with the best
  ``UCB = Q/v + c * sqrt(ln V / v) - lambda * len(path) / N`` (Q: summed rewards, v: the child's
  visits, V: the parent's, N: the model's layers; ties go to the earlier move);
- evaluate: the leaf's path is *yielded* and its reward (1 correct, 0 wrong) sent back — the search
  is a generator program, so a driver (:mod:`.lockstep`) can run many problems' searches together
  and batch every problem that needs the same path into one model call;
- ``_backpropagate``: add the reward and a visit to every node on the way.

Defaults are the paper's: 200 simulations, lambda = 5 on the normalised length, random expansion
with p = 0.1, c = sqrt(2) (PoLar's). The random generator is seeded with ``seed`` alone, not with
the problem: the search of a problem is a pure function of its rewards and the seed, so problems
whose rewards agree make the same moves and share model calls.

    >>> search = PathSearch(LayerGrammar(8), SearchSettings(simulations=200))   # doctest: +SKIP
    >>> program = search.run(); path = next(program)                             # doctest: +SKIP
    >>> path = program.send(1.0)   # the reward of the path it yielded, and so on  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reasonkit.cola.grammar import LayerGrammar, Move, Path, PathState, format_path


@dataclass(frozen=True)
class SearchSettings:
    """MCTS knobs (the paper's defaults)."""

    simulations: int = 200
    exploration: float = math.sqrt(2)
    length_penalty: float = 5.0
    random_expand: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.simulations < 1:
            raise ValueError(f"simulations must be >= 1, got {self.simulations}")
        if self.exploration < 0 or self.length_penalty < 0:
            raise ValueError("exploration and length_penalty must be >= 0")
        if not 0 <= self.random_expand <= 1:
            raise ValueError(f"random_expand is a probability in [0, 1], got {self.random_expand}")


@dataclass(eq=False)
class Node:
    """A move prefix: its state, the whole path it stands for, its statistics and children."""

    state: PathState
    path: Path
    index: int  # creation order (the root is 0)
    children: dict[Move, Node] = field(default_factory=dict)
    visits: int = 0
    value: float = 0.0  # summed rewards of the simulations through this node
    reward: float | None = None  # the reward of its own path, once scored

    @property
    def name(self) -> str:
        return "/".join(str(m) for m in self.state.moves) or "root"


class PathSearch:
    """One problem's MCTS; :meth:`run` is the generator program, :attr:`nodes` the tree it grew."""

    def __init__(self, grammar: LayerGrammar, settings: SearchSettings | None = None) -> None:
        self.grammar = grammar
        self.settings = settings or SearchSettings()
        self.rng = np.random.default_rng(self.settings.seed)
        start = PathState()
        self.root = Node(start, grammar.complete(start), 0)
        self.nodes: list[Node] = [self.root]
        self.simulations = 0

    def run(self, memo: bool = True) -> Generator[Path, float, PathSearch]:
        """Yield the path of each simulation's leaf; expects its reward back; returns the search.

        A node keeps its reward once scored, so revisiting it yields nothing; ``memo=False`` yields
        every simulation's leaf (a naive loop's cost; same rewards, same tree)."""
        for _ in range(self.settings.simulations):
            trail = self._select()
            leaf = trail[-1]
            if leaf.reward is None or not memo:
                leaf.reward = float((yield leaf.path))
            self._backpropagate(trail, leaf.reward)
            self.simulations += 1
        return self

    def _select(self) -> list[Node]:
        node = self.root
        trail = [node]
        while node.reward is not None and not self.grammar.is_terminal(node.state):
            untried = [m for m in self.grammar.legal_moves(node.state) if m not in node.children]
            if untried and (not node.children or self.rng.random() < self.settings.random_expand):
                move = untried[int(self.rng.integers(len(untried)))]
                node = self._expand(node, move)
                trail.append(node)
                break
            node = max(node.children.values(), key=lambda child: self._ucb(node, child))
            trail.append(node)
        return trail

    def _expand(self, parent: Node, move: Move) -> Node:
        state = self.grammar.apply(parent.state, move)
        child = Node(state, self.grammar.complete(state), len(self.nodes))
        parent.children[move] = child
        self.nodes.append(child)
        return child

    def _ucb(self, parent: Node, child: Node) -> float:
        s = self.settings
        exploit = child.value / child.visits
        explore = s.exploration * math.sqrt(math.log(parent.visits) / child.visits)
        return exploit + explore - s.length_penalty * len(child.path) / self.grammar.num_layers

    @staticmethod
    def _backpropagate(trail: list[Node], reward: float) -> None:
        for node in trail:
            node.visits += 1
            node.value += reward

    # ---- what the search found -----------------------------------------------------------------------
    def scored_paths(self) -> list[Path]:
        """Distinct paths the search scored, in the order it first scored them."""
        return list(dict.fromkeys(n.path for n in self.nodes if n.reward is not None))

    def graph(self) -> Any:
        """The tree as a networkx DiGraph (node ids are move prefixes; attributes GraphML can hold)."""
        import networkx as nx

        graph = nx.DiGraph()
        for node in self.nodes:
            graph.add_node(
                node.name,
                order=node.index,
                moves=" ".join(str(m) for m in node.state.moves),
                path=format_path(node.path),
                length=len(node.path),
                visits=node.visits,
                value=float(node.value),
                reward=-1.0 if node.reward is None else float(node.reward),
                terminal=self.grammar.is_terminal(node.state),
            )
            for move, child in node.children.items():
                graph.add_edge(node.name, child.name, move=str(move))
        return graph
