"""Prompt packs: the RL-of-Thoughts calls rendered from data (compact control tokens, natural language).

    >>> from reasonkit.packs import load_pack, BLOCKS
    >>> BLOCKS
    ('reason', 'decompose', 'debate', 'refine', 'terminate')
    >>> load_pack("natural").format
    'chat'

The block vocabulary (``reasonkit.packs.blocks``) imports nothing beyond the standard library; the
pack machinery (YAML, templates) loads on first use of ``PromptPack`` / ``load_pack``. The contract
(method names, arguments, parser guarantees) is documented in docs/prompt-packs.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reasonkit._lazy import lazy_exports
from reasonkit.packs.blocks import (
    ASPECT_MEANINGS,
    ASPECTS,
    BLOCK_CALLS,
    BLOCK_IDS,
    BLOCKS,
    CALLS,
    OPTIONAL_CALLS,
    SCORES,
)

if TYPE_CHECKING:
    from reasonkit.packs.pack import BUILTIN_PACKS, PromptPack, available_packs, load_pack
    from reasonkit.packs.schema import PackError

_LAZY: dict[str, str] = {
    "BUILTIN_PACKS": "reasonkit.packs.pack",
    "PromptPack": "reasonkit.packs.pack",
    "available_packs": "reasonkit.packs.pack",
    "load_pack": "reasonkit.packs.pack",
    "PackError": "reasonkit.packs.schema",
}

__all__ = [
    "ASPECTS",
    "ASPECT_MEANINGS",
    "BLOCKS",
    "BLOCK_CALLS",
    "BLOCK_IDS",
    "BUILTIN_PACKS",
    "CALLS",
    "OPTIONAL_CALLS",
    "SCORES",
    "PackError",
    "PromptPack",
    "available_packs",
    "load_pack",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
