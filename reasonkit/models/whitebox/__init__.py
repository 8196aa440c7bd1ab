"""The white-box layer: a causal LM opened up for methods that edit its forward (CoLa, TaH, HRPO).

    >>> from reasonkit.models.whitebox import open_whitebox            # doctest: +SKIP
    >>> lm = open_whitebox(model, tokenizer)                            # GatedLM or a Llama-family HF model
    >>> out = lm.forward(lm.embed(ids), path=(0, 1, 1, 2))              # skip and repeat layers
    >>> logits = lm.logits(out.hidden)

:class:`WhiteBoxLM` (``handle``), :class:`SlotCache` (``cache``: one slot per path occurrence and latent
depth), :func:`decode` (``decode_loop``: a batched decode loop with hooks). docs/whitebox.md has the design.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "WhiteBoxLM": "reasonkit.models.whitebox.handle",
    "WhiteBoxOutput": "reasonkit.models.whitebox.handle",
    "open_whitebox": "reasonkit.models.whitebox.handle",
    "SlotCache": "reasonkit.models.whitebox.cache",
    "check_path": "reasonkit.models.whitebox.cache",
    "LlamaWhiteBox": "reasonkit.models.whitebox.llama",
    "GatedLMWhiteBox": "reasonkit.models.whitebox.gated",
    "decode": "reasonkit.models.whitebox.decode_loop",
    "DecodeHooks": "reasonkit.models.whitebox.decode_loop",
    "DecodeStep": "reasonkit.models.whitebox.decode_loop",
    "DecodedRow": "reasonkit.models.whitebox.decode_loop",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
