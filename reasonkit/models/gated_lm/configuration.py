"""Configuration of GatedLM, a hybrid decoder whose layers mix GLA, gated softmax attention and sLSTM.

Each decoder layer is pre-norm: ``h += mixer(norm(h)); h += SwiGLU(norm(h))``, with the mixer picked
per layer by ``mixer_types``:

- ``"gla"``: gated linear attention (Yang et al., arXiv 2312.06635) laid out like fla's
  ``GatedLinearAttention`` layer: a low-rank gate projection, ``g = logsigmoid(x) / normaliser``, and
  an output gate through a per-head RMSNorm and swish.
- ``"attn"``: softmax attention with a sigmoid output gate (Qiu et al., "Gated Attention for Large
  Language Models", arXiv 2505.06708), the gate folded into ``q_proj`` as in Qwen3-Next; rotary
  position embeddings; grouped-query heads.
- ``"slstm"``: head-wise sLSTM (Beck et al., "xLSTM", arXiv 2405.04517) with block-diagonal recurrent
  weights, as computed by FlashRNN.

Example::

    from reasonkit.models import GatedLMConfig, GatedLMForCausalLM
    config = GatedLMConfig(vocab_size=100, hidden_size=64, num_hidden_layers=3,
                           mixer_types=["gla", "attn", "slstm"], num_heads=4)

``mixer_types`` was called ``layer_types`` before transformers reserved that name for its own layer
kinds (it now validates it in every config, so a checkpoint holding ``"layer_types": ["gla", …]``
could not even be opened by ``AutoTokenizer`` without reasonkit imported). Old configs and the
``layer_types=`` keyword still load: the value moves to ``mixer_types`` and is saved under that name.
    model = GatedLMForCausalLM(config)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

LAYER_TYPES: tuple[str, ...] = ("gla", "attn", "slstm")
ATTN_GATES: tuple[str, ...] = ("elementwise", "headwise")
GLA_KERNELS: tuple[str, ...] = ("auto", "chunk", "fused_recurrent")
MODEL_TYPE = "reasonkit_gated_lm"
#: the old name of ``mixer_types``, read from configs saved before the rename
LEGACY_MIXER_TYPES = "layer_types"


def default_layer_types(num_hidden_layers: int, attn_interval: int = 4) -> list[str]:
    """Three GLA layers then one attention layer, repeated (Qwen3-Next's 3:1 linear-to-full ratio)."""
    return ["attn" if (i + 1) % attn_interval == 0 else "gla" for i in range(num_hidden_layers)]


@strict(accept_kwargs=True)
class GatedLMConfig(PreTrainedConfig):
    r"""Hyper-parameters of a GatedLM; every field is saved in ``config.json``.

    Args:
        vocab_size: number of token ids.
        hidden_size: width of the residual stream.
        num_hidden_layers: number of decoder layers.
        mixer_types: one of ``"gla" | "attn" | "slstm"`` per layer. Default: three ``"gla"`` then one
            ``"attn"``, repeated. (``layer_types``, its old name, is accepted when loading.)
        num_heads: heads of every mixer (GLA, attention query heads, sLSTM).
        num_kv_heads: key/value heads of attention layers (grouped-query); default ``num_heads``.
        head_dim: attention head width; default ``hidden_size // num_heads``.
        attn_gate: ``"elementwise"`` (one sigmoid gate per head channel, the paper's best variant) or
            ``"headwise"`` (one scalar per head).
        rope_theta: base of the rotary position embedding of attention layers.
        gla_expand_k / gla_expand_v: GLA key / value width as a multiple of ``hidden_size`` (fla: 0.5, 1).
        gla_gate_low_rank_dim: rank of GLA's forget-gate projection (fla: 16).
        gla_gate_logit_normalizer: divides ``logsigmoid`` of the gate logits (fla: 16); larger means
            slower forgetting.
        gla_kernel: which GLA kernel runs a sequence (decoding one token always runs ``gla_step``):
            ``"chunk"``, ``"fused_recurrent"``, or ``"auto"`` — chunkwise above 64 tokens on CUDA (fla's
            rule), recurrent otherwise. Same math either way; only speed differs.
        slstm_num_heads: sLSTM heads; default ``num_heads``. Head width is ``hidden_size // slstm_num_heads``.
        intermediate_size: SwiGLU width; default ``8/3 · hidden_size`` rounded up to a multiple of 32.
        rms_norm_eps: epsilon of every RMSNorm.
        max_position_embeddings: the longest context the model was trained for (informational: RoPE
            and the recurrences have no hard limit).
        initializer_range: standard deviation of the normal weight init.
        use_cache: whether ``forward`` returns a :class:`GatedLMCache` by default.
        tie_word_embeddings: share the input embedding with the LM head.
    """

    model_type: ClassVar[str] = MODEL_TYPE
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["cache"]
    # the names transformers' generic utilities read
    attribute_map: ClassVar[dict[str, str]] = {
        "num_attention_heads": "num_heads",
        "num_key_value_heads": "num_kv_heads",
    }

    vocab_size: int = 32000
    hidden_size: int = 512
    num_hidden_layers: int = 8
    mixer_types: list[str] | None = None
    num_heads: int = 8
    num_kv_heads: int | None = None
    head_dim: int | None = None
    attn_gate: str = "elementwise"
    rope_theta: float = 10000.0
    gla_expand_k: float = 0.5
    gla_expand_v: float = 1.0
    gla_gate_low_rank_dim: int = 16
    gla_gate_logit_normalizer: float = 16.0
    gla_kernel: str = "auto"
    slstm_num_heads: int | None = None
    intermediate_size: int | None = None
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2

    def __post_init__(self, **kwargs: Any) -> None:
        for alias, name in self.attribute_map.items():
            if alias in kwargs:  # resolve aliases before the defaults derived from them
                setattr(self, name, kwargs.pop(alias))
        legacy = kwargs.pop(LEGACY_MIXER_TYPES, None)
        if legacy is not None:  # a checkpoint saved before the rename (the shipped model's until 2027-01)
            if self.mixer_types is not None and list(self.mixer_types) != list(legacy):
                raise ValueError(
                    f"GatedLMConfig got mixer_types={self.mixer_types} and its old name "
                    f"{LEGACY_MIXER_TYPES}={legacy}; keep only mixer_types"
                )
            self.mixer_types = legacy
        self._check_types()  # before the defaults derived from the sizes
        if self.mixer_types is None:
            self.mixer_types = default_layer_types(self.num_hidden_layers)
        else:
            self.mixer_types = list(self.mixer_types)
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_heads
        if self.slstm_num_heads is None:
            self.slstm_num_heads = self.num_heads
        if self.head_dim is None and self.num_heads > 0:
            self.head_dim = self.hidden_size // self.num_heads
        if self.intermediate_size is None:
            self.intermediate_size = 32 * math.ceil(8 * self.hidden_size / 3 / 32)
        self.check()
        super().__post_init__(**kwargs)

    # --- derived widths (read by the layers) ---
    @property
    def gla_key_dim(self) -> int:
        return int(self.hidden_size * self.gla_expand_k)

    @property
    def gla_value_dim(self) -> int:
        return int(self.hidden_size * self.gla_expand_v)

    def check(self) -> None:
        """Raise ``ValueError`` naming the bad field and the fix; called on construction and load."""
        self._check_types()
        assert self.mixer_types is not None and self.num_kv_heads is not None
        self._check_shapes()

    def _check_types(self) -> None:
        """Sizes are positive whole numbers and rates are numbers (a config.json edited by hand may not be)."""
        counts = ("vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "num_kv_heads", "slstm_num_heads",
                  "gla_gate_low_rank_dim", "intermediate_size", "head_dim")  # fmt: skip
        for name in counts:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"GatedLMConfig.{name} must be a positive whole number, got {value!r}")
        numbers = ("gla_expand_k", "gla_expand_v", "gla_gate_logit_normalizer", "rms_norm_eps", "rope_theta")
        for name in numbers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"GatedLMConfig.{name} must be a number, got {value!r}")

    def _check_shapes(self) -> None:
        assert self.mixer_types is not None and self.num_kv_heads is not None
        unknown = sorted({t for t in self.mixer_types if t not in LAYER_TYPES})
        if unknown:
            raise ValueError(
                f"GatedLMConfig.mixer_types has unknown layer type(s) {unknown}; each entry must be one of {LAYER_TYPES}"
            )
        if len(self.mixer_types) != self.num_hidden_layers:
            raise ValueError(
                f"GatedLMConfig.mixer_types has {len(self.mixer_types)} entries but num_hidden_layers is "
                f"{self.num_hidden_layers}; give one layer type per layer"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"GatedLMConfig: num_heads={self.num_heads} does not divide hidden_size={self.hidden_size}; "
                "pick num_heads among the divisors of hidden_size"
            )
        if self.attn_gate not in ATTN_GATES:
            raise ValueError(f"GatedLMConfig.attn_gate={self.attn_gate!r} must be one of {ATTN_GATES}")
        if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"GatedLMConfig: num_kv_heads={self.num_kv_heads} must be positive and divide "
                f"num_heads={self.num_heads} (grouped-query attention shares each key/value head "
                "among num_heads // num_kv_heads query heads)"
            )
        if self.head_dim is None or self.head_dim <= 0 or self.head_dim % 2:
            raise ValueError(
                f"GatedLMConfig.head_dim={self.head_dim} must be a positive even number (rotary embeddings "
                "rotate channel pairs)"
            )
        for name, width in (("gla_expand_k", self.gla_key_dim), ("gla_expand_v", self.gla_value_dim)):
            if width <= 0 or width % self.num_heads:
                raise ValueError(
                    f"GatedLMConfig.{name}={getattr(self, name)} gives a GLA width of {width}, which must be "
                    f"positive and divisible by num_heads={self.num_heads}; change {name} or num_heads"
                )
        if self.gla_kernel not in GLA_KERNELS:
            raise ValueError(f"GatedLMConfig.gla_kernel={self.gla_kernel!r} must be one of {GLA_KERNELS}")
        if self.gla_gate_logit_normalizer <= 0:
            raise ValueError(
                f"GatedLMConfig.gla_gate_logit_normalizer must be > 0, got {self.gla_gate_logit_normalizer}"
            )
        assert self.slstm_num_heads is not None
        if self.slstm_num_heads <= 0 or self.hidden_size % self.slstm_num_heads:
            raise ValueError(
                f"GatedLMConfig: slstm_num_heads={self.slstm_num_heads} must be positive and divide "
                f"hidden_size={self.hidden_size}"
            )
        if self.intermediate_size is None or self.intermediate_size <= 0:
            raise ValueError(
                f"GatedLMConfig.intermediate_size must be positive, got {self.intermediate_size}"
            )
        if self.rms_norm_eps <= 0 or self.rope_theta <= 0:
            raise ValueError("GatedLMConfig.rms_norm_eps and rope_theta must be > 0")

    def validate_layer_type(self) -> None:
        """Replaces transformers' check, which only knows its own layer names (run by ``config.validate()``)."""
        self.check()
