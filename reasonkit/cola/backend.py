"""``--model cola:DIR``: a model whose layer path is chosen per prompt by a trained path predictor.

    reasonkit eval --bench arith --limit 100 --model cola:runs/cola-arith/predictor --out runs/eval-cola
    reasonkit solve "48-7*(3+2)" --model cola:runs/cola-arith/predictor
    reasonkit serve --model cola:runs/cola-arith/predictor

``DIR`` is a predictor directory (``reasonkit cola train-predictor`` writes ``RUN/predictor``) or
the search run holding it. The base model is the one the search ran (recorded in the predictor).
For each batch of prompts the predictor reads every prompt (one default-path forward over it),
picks one path per prompt, and the prompts that share a path run as one batch through
``HFBackend(model, path=...)`` — one backend per distinct path, all sharing the base model's weights.
A single found path needs no predictor: ``--model layers:0,1,1,2-7@builtin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonkit.backends.base import require_whitebox
from reasonkit.backends.hf import HFBackend
from reasonkit.cola.grammar import format_path
from reasonkit.cola.predictor import CARD, PathPredictor, prompt_features
from reasonkit.models.threads import torch_threads
from reasonkit.types import Completion, Prompt, SamplingParams


class PredictedPathBackend:
    """A LanguageModel that runs each prompt through the layer path a :class:`PathPredictor` picks."""

    def __init__(self, base: HFBackend, predictor: PathPredictor, name: str) -> None:
        self.base = base
        self.predictor = predictor
        self.lm = require_whitebox(base, "the CoLa path predictor")
        if self.lm.num_layers != predictor.num_layers:
            raise ValueError(
                f"the predictor was trained for a {predictor.num_layers}-layer model but {base.name!r} has "
                f"{self.lm.num_layers} layers; load it over the model it was trained on"
            )
        self.name = name
        self.model = base.model  # the thread policy and `reasonkit serve` look for the torch module here
        # no "whitebox": the forward is chosen per prompt, so a method editing it would be misled
        self.capabilities: frozenset[str] = base.capabilities - {"whitebox"}
        self.prompt_pack: str = base.prompt_pack
        self.kinds = base.kinds
        self.threads = base.threads
        self.context_length = base.context_length
        self.fingerprint = f"{name}@{base.fingerprint}"
        self._backends: dict[tuple[int, ...], HFBackend] = {self.lm.default_path(): base}

    def paths_for(self, prompts: Sequence[Prompt]) -> list[tuple[int, ...]]:
        """The path the predictor picks for each prompt."""
        with torch_threads(self.threads):
            features = prompt_features(self.lm, [self.base.encode(p) for p in prompts])
        return self.predictor.choose(features)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        results: list[list[Completion] | None] = [None] * len(prompts)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, path in enumerate(self.paths_for(prompts)):
            groups.setdefault(path, []).append(i)
        for path, indices in groups.items():
            outputs = self._backend(path).generate([prompts[i] for i in indices], params)
            for i, output in zip(indices, outputs):
                results[i] = output
        return [r for r in results if r is not None]

    def loglikelihood(self, prefix: Prompt, continuations: Sequence[str]) -> list[float]:
        [path] = self.paths_for([prefix])
        return self._backend(path).loglikelihood(prefix, continuations)

    def _backend(self, path: tuple[int, ...]) -> HFBackend:
        if path not in self._backends:
            base = self.base
            self._backends[path] = HFBackend(
                base.model,
                base.tokenizer,
                path=path,
                name=base.name,
                prompt_pack=base.prompt_pack,
                threads=base.threads,
                batch_size=base.batch_size,
            )
        return self._backends[path]

    def close(self) -> None:
        self.base.close()

    def __repr__(self) -> str:
        paths = ", ".join(format_path(p) for p in self.predictor.candidates[:3])
        return f"PredictedPathBackend({self.name!r}, candidates=[{paths}, ...])"


def predictor_dir(arguments: str) -> Path:
    """The predictor directory ``cola:ARGUMENTS`` names (a run directory holding one works too)."""
    directory = Path(arguments.strip()).expanduser()
    if not (directory / CARD).is_file() and (directory / "predictor" / CARD).is_file():
        directory = directory / "predictor"
    return directory


def load(arguments: str, **kwargs: Any) -> PredictedPathBackend:
    """``cola:DIR`` (METHOD_SPECS): the base model the predictor names, with its per-prompt path choice."""
    from reasonkit.backends.loading import SpecError, load_base

    if not arguments.strip():
        raise SpecError("'cola:' needs a predictor directory: cola:runs/NAME/predictor")
    directory = predictor_dir(arguments)
    predictor = PathPredictor.load(directory)
    base_spec = str((predictor.info or {}).get("base_model") or "")
    if not base_spec:
        raise ValueError(
            f"{directory / CARD} names no base model; retrain with `reasonkit cola train-predictor`"
        )
    base = load_base(base_spec, (predictor.info or {}).get("base_digest"), str(directory / CARD), **kwargs)
    if not isinstance(base, HFBackend):
        raise SpecError(f"the predictor's base model {base_spec!r} is not a local model; it needs one")
    return PredictedPathBackend(base, predictor, name=f"cola:{arguments.strip()}")
