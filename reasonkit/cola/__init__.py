"""Chain-of-layers search (CoLa, arXiv 2507.07996): skip or repeat a frozen model's layers per problem.

    >>> from reasonkit.cola import LayerGrammar, PathSearch, PathScorer, run_lockstep   # doctest: +SKIP
    >>> scorer = PathScorer(load_backend("builtin"), problems)                          # doctest: +SKIP
    >>> searches = {i: PathSearch(LayerGrammar(8)) for i in range(len(problems))}        # doctest: +SKIP
    >>> run_lockstep({i: s.run() for i, s in searches.items()}, scorer)                  # doctest: +SKIP

The pieces (docs/cola.md): :mod:`.grammar` (layer paths as move sequences, limits), :mod:`.env`
(the search as a gymnasium environment), :mod:`.mcts` (one problem's MCTS as a generator program),
:mod:`.lockstep` (many problems' searches, one model call per path), :mod:`.scoring` (rewards:
greedy decoding under a path, graded), :mod:`.search` (``reasonkit cola search`` and its run
directory), :mod:`.predictor` (question -> path, deployable without an answer key) and
:mod:`.backend` (``--model cola:DIR``).
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "LayerGrammar": "reasonkit.cola.grammar",
    "Move": "reasonkit.cola.grammar",
    "PathState": "reasonkit.cola.grammar",
    "LayerPathEnv": "reasonkit.cola.env",
    "PathSearch": "reasonkit.cola.mcts",
    "SearchSettings": "reasonkit.cola.mcts",
    "run_lockstep": "reasonkit.cola.lockstep",
    "PathScorer": "reasonkit.cola.scoring",
    "Outcome": "reasonkit.cola.table",
    "RewardTable": "reasonkit.cola.table",
    "SearchConfig": "reasonkit.cola.search",
    "run_search": "reasonkit.cola.search",
    "PathPredictor": "reasonkit.cola.predictor",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
