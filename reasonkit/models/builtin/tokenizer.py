"""The built-in model's character-level tokenizer, built with Hugging Face ``tokenizers``.

One token per character of printable ASCII (plus newline and tab), one token per control token of
the compact prompt pack (``<q>``, ``<cot>``, ``<refine>`` … matched whole before characters are
split), and four special tokens whose ids match :class:`~reasonkit.models.GatedLMConfig`'s defaults:

    0 <pad>   1 <bos>   2 <eos>   3 <unk>   4.. control tokens   then "\\n", "\\t", " ", "!" … "~"

Encoding raw text prepends ``<bos>`` (the post-processor), which is what
:class:`~reasonkit.backends.hf.HFBackend` asks for (``add_special_tokens=True``) and what the trainer
feeds. Control tokens are *not* special tokens: ``decode(..., skip_special_tokens=True)`` keeps them,
so ``decode(encode(prompt))`` round-trips every prompt the pack writes.

    >>> tok = build_tokenizer()
    >>> tok.convert_ids_to_tokens(tok("<q>3+4<cot>")["input_ids"])
    ['<bos>', '<q>', '3', '+', '4', '<cot>']
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from reasonkit.packs import load_pack

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
#: Every single-character token, in id order: newline, tab, then printable ASCII from space to "~".
CHARACTERS: tuple[str, ...] = ("\n", "\t", *(chr(c) for c in range(32, 127)))
assert set(string.printable) - {"\r", "\x0b", "\x0c"} == set(CHARACTERS)


def control_tokens() -> tuple[str, ...]:
    """The compact pack's control tokens (one token each), in the pack's order."""
    return tuple(load_pack("compact").control_tokens)


def vocabulary() -> dict[str, int]:
    """token -> id: special tokens, control tokens, then characters."""
    tokens = [*SPECIAL_TOKENS, *control_tokens(), *CHARACTERS]
    return {token: i for i, token in enumerate(tokens)}


def build_backend_tokenizer() -> Any:
    """The raw ``tokenizers.Tokenizer`` (fast, picklable: what data workers use)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = vocabulary()
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # every character is its own "word"; [\s\S] also matches the newline that ends each target
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # join tokens without the spaces WordLevel would put between them
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in control_tokens()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return tokenizer


def build_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over :func:`build_backend_tokenizer` (what AutoTokenizer loads back)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=build_backend_tokenizer(),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",  # generation pads on the left; the trainer pads by hand on the right
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )


def save_tokenizer(directory: str | Path) -> list[str]:
    """Write tokenizer.json + tokenizer_config.json into ``directory``; returns the file names."""
    written = build_tokenizer().save_pretrained(str(directory))
    return sorted(Path(p).name for p in written)
