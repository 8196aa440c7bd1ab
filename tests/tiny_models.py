"""Tiny real models for tests: a byte-level BPE tokenizer trained here and random-init Llama / Qwen2.

Shared by every test package (``pythonpath = ["tests"]`` in pyproject.toml). Weights use a large
init scale so next-token distributions are peaked: greedy decoding then has no near-ties that float
noise between batched and unbatched runs could flip.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CORPUS = [
    "Question: what is 2 + 3? Let us think step by step. 2 + 3 = 5. The answer is 5.",
    "Question: what is 7 * 6? Step 1: 7 * 6 = 42. The answer is 42.",
    "The quick brown fox jumps over the lazy dog.",
    "user: hello\nassistant: hi there, how can I help?",
    "Answer: B. Therefore the final answer is \\boxed{12}.",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    # Raw-text prompts get a BOS, as Llama tokenizers do, so tests see special-token handling.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token=None
    )
    if chat_template is not None:
        hf.chat_template = chat_template
    return hf


def build_model(
    tokenizer: PreTrainedTokenizerFast, family: str = "llama", seed: int = 0, layers: int = 2
) -> torch.nn.Module:
    torch.manual_seed(seed)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=0.3,
        tie_word_embeddings=False,
    )
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(f"unknown family {family!r}; use 'llama' or 'qwen2'")
    return model.eval()
