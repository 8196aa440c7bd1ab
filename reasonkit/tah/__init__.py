"""Think-at-Hard (Fu et al., arXiv 2511.08577): selective latent iterations on the tokens a small
decider judges hard, with LoRA active only from the second pass, duo-causal attention across passes,
residual logits and a top-k soft embedding as the next pass's input.

    reasonkit train-tah --out runs/tah                  # the built-in model on arith-hard (CPU)
    reasonkit eval --bench arith --model tah:runs/tah/tah --out runs/eval-tah

    >>> from reasonkit import load_backend                       # doctest: +SKIP
    >>> lm = load_backend("tah:runs/tah/tah")                    # any command runs on it
    >>> lm.generate(["<q>48-7*(3+2)<cot>"], params)[0][0].meta["tah"]["depths"]   # doctest: +SKIP

Modules: ``config`` (TaHConfig), ``passes`` (the packed forward), ``model`` (TaHModel: losses,
directory), ``decider``, ``lora``, ``data`` (CoT text, oracle labels), ``hooks`` (decoding),
``backend`` (the ``tah:`` spec), ``train`` (reasonkit train-tah). docs/tah.md has the design.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "TaHConfig": "reasonkit.tah.config",
    "DeciderSpec": "reasonkit.tah.config",
    "TaHModel": "reasonkit.tah.model",
    "IterationDecider": "reasonkit.tah.decider",
    "TaHHooks": "reasonkit.tah.hooks",
    "soft_embedding": "reasonkit.tah.passes",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
