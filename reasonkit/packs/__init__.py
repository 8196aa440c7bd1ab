"""Prompt packs: the RL-of-Thoughts calls rendered from data (compact control tokens, natural language).

    >>> from reasonkit.packs import load_pack, BLOCKS
    >>> BLOCKS
    ('reason', 'decompose', 'debate', 'refine', 'terminate')
    >>> load_pack("natural").format
    'chat'

The contract (method names, arguments, parser guarantees) is documented in docs/prompt-packs.md.
"""

from __future__ import annotations

from reasonkit.packs.blocks import ASPECT_MEANINGS, ASPECTS, BLOCK_CALLS, BLOCK_IDS, BLOCKS, CALLS, SCORES
from reasonkit.packs.pack import BUILTIN_PACKS, PromptPack, available_packs, load_pack
from reasonkit.packs.schema import PackError

__all__ = [
    "ASPECTS",
    "ASPECT_MEANINGS",
    "BLOCKS",
    "BLOCK_CALLS",
    "BLOCK_IDS",
    "BUILTIN_PACKS",
    "CALLS",
    "SCORES",
    "PackError",
    "PromptPack",
    "available_packs",
    "load_pack",
]
