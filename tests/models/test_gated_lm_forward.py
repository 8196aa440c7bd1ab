"""GatedLM forward: shapes, loss, padding, cached continuation, layer orders, and the mixers' math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gated_lm_helpers import VOCAB, left_pad, make_model
from torch import nn

from reasonkit.kernels import slstm
from reasonkit.models import GatedLMCache

MIXED = ["gla", "attn", "slstm"]


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_shapes_hidden_states_and_white_box_layers():
    model = make_model(MIXED)
    ids = _ids(2, 9)
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == (2, 9, VOCAB)
    layers = model.model.layers
    assert isinstance(layers, nn.ModuleList) and len(layers) == 3
    assert [layer.layer_type for layer in layers] == MIXED
    assert [layer.layer_idx for layer in layers] == [0, 1, 2]
    hidden = out.hidden_states
    assert len(hidden) == 4 and all(h.shape == (2, 9, 32) for h in hidden)
    torch.testing.assert_close(hidden[0], model.model.embed_tokens(ids))
    base = model.model(ids)
    assert torch.equal(hidden[-1], base.last_hidden_state)  # transformers' rule: last entry is post-norm
    as_tuple = model(ids, return_dict=False, use_cache=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.logits)
    assert model(ids, logits_to_keep=1).logits.shape == (2, 1, VOCAB)


def test_loss_is_shifted_cross_entropy_ignoring_minus_100():
    model = make_model(MIXED)
    ids = _ids(3, 8)
    labels = ids.clone()
    labels[0, :3] = -100
    out = model(ids, labels=labels)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(
        out.loss.double(), ref, rtol=1e-6, atol=1e-6
    )  # transformers computes it in fp32
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if "embed" not in name:
            assert p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_inputs_embeds_equals_input_ids():
    model = make_model(MIXED)
    ids = _ids(2, 7)
    embeds = model.get_input_embeddings()(ids)
    torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(ids).logits)


@pytest.mark.parametrize("layer_types", [["gla"], ["attn"], ["slstm"], ["attn", "gla", "slstm", "attn"]])
def test_left_padded_rows_equal_rows_alone(layer_types):
    model = make_model(layer_types)
    rows = [_ids(1, n, seed=n)[0].tolist() for n in (9, 2, 5, 9)]
    ids, mask = left_pad(rows)
    # pad ids that differ from the pad token must not matter either
    ids = torch.where(mask.bool(), ids, torch.randint(3, VOCAB, ids.shape))
    batched = model(ids, attention_mask=mask).logits
    for i, row in enumerate(rows):
        alone = model(torch.tensor([row])).logits[0]
        torch.testing.assert_close(batched[i, -len(row) :], alone, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("gla_kernel", ["fused_recurrent", "chunk"])
def test_cached_continuation_equals_one_forward(gla_kernel):
    """Prefill, one decode step, then a multi-token chunk, all with left padding."""
    model = make_model(["gla", "attn", "slstm", "gla"], gla_kernel=gla_kernel)
    rows = [_ids(1, n, seed=n)[0].tolist() for n in (30, 21)]
    ids, mask = left_pad(rows)
    full = model(ids, attention_mask=mask).logits
    cut1, cut2 = 12, 13
    out = model(ids[:, :cut1], attention_mask=mask[:, :cut1], use_cache=True)
    cache = out.cache
    assert isinstance(cache, GatedLMCache) and cache.get_seq_length() == cut1
    parts = [out.logits]
    step_embeds = model.get_input_embeddings()(ids[:, cut1:cut2])  # decode from embeddings, as HRPO does
    out = model(inputs_embeds=step_embeds, attention_mask=mask[:, :cut2], cache=cache)  # mask over all tokens
    parts.append(out.logits)
    out = model(ids[:, cut2:], attention_mask=mask[:, cut2:], cache=cache)  # mask of the new tokens only
    parts.append(out.logits)
    assert cache.get_seq_length() == ids.shape[1]
    torch.testing.assert_close(torch.cat(parts, dim=1)[mask.bool()], full[mask.bool()], rtol=1e-9, atol=1e-9)


def _manual_forward(model, ids: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Run decoder layers by hand in ``order``: the definition of ``layer_order``."""
    hidden = model.model.embed_tokens(ids)
    positions = torch.arange(ids.shape[1])[None].expand(ids.shape[0], -1)
    rotary = model.model.rotary(positions, hidden.dtype)
    for i in order:
        hidden = model.model.layers[i](hidden, rotary=rotary)
    return model.lm_head(model.model.norm(hidden))


@pytest.mark.parametrize("order", [[2, 0, 0, 1], [1], [0, 1, 2, 2, 2]])
def test_layer_order_runs_layers_as_listed(order):
    model = make_model(MIXED)
    ids = _ids(2, 6)
    out = model(ids, layer_order=order, output_hidden_states=True)
    torch.testing.assert_close(out.logits, _manual_forward(model, ids, order))
    assert len(out.hidden_states) == len(order) + 1
    assert not torch.allclose(out.logits, model(ids).logits)
    empty = model(ids, layer_order=[]).logits  # every layer skipped: head over the normed embeddings
    torch.testing.assert_close(empty, model.lm_head(model.model.norm(model.model.embed_tokens(ids))))


def test_repeated_layers_keep_one_cache_slot_per_visit():
    model = make_model(MIXED)
    order = [0, 1, 1, 2, 0, 2]
    ids = _ids(2, 11)
    full = model(ids, layer_order=order).logits
    out = model(ids[:, :7], layer_order=order, use_cache=True)
    cache = out.cache
    assert len(cache) == len(order) and cache.slot_types == ("gla", "attn", "attn", "slstm", "gla", "slstm")
    steps = [out.logits]
    for t in range(7, 11):
        steps.append(model(ids[:, t : t + 1], layer_order=order, cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="built for layer_order"):
        model(ids[:, :1], cache=cache)  # default order differs from the cache's


def test_bad_inputs_raise_clear_errors():
    model = make_model(MIXED)
    ids = _ids(2, 5)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(ids, inputs_embeds=model.get_input_embeddings()(ids))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model()
    with pytest.raises(ValueError, match=r"layer indices in \[0, 3\)"):
        model(ids, layer_order=[0, 3])
    with pytest.raises(ValueError, match="must be 2-D"):
        model(ids, attention_mask=torch.ones(2, 1, 5, 5))
    with pytest.raises(ValueError, match="attention_mask has 4 columns"):
        model(ids, attention_mask=torch.ones(2, 4))
    cache = model(ids, use_cache=True).cache
    with pytest.raises(ValueError, match="holds a batch of 2 rows"):
        model(_ids(3, 1), cache=cache)


def test_attention_mixer_matches_plain_softmax_reference():
    for gate_kind in ("elementwise", "headwise"):
        model = make_model(["attn"], attn_gate=gate_kind)
        mixer = model.model.layers[0].mixer
        H, Hkv, D = 4, 2, 8
        assert mixer.q_proj.out_features == H * (D + (D if gate_kind == "elementwise" else 1))
        x = torch.randn(2, 6, 32, dtype=torch.float64)
        positions = torch.arange(6)[None].expand(2, -1)
        cos, sin = model.model.rotary(positions, x.dtype)
        qg = mixer.q_proj(x).view(2, 6, H, -1)
        q, gate = qg[..., :D], qg[..., D:]
        k = mixer.k_proj(x).view(2, 6, Hkv, D).repeat_interleave(H // Hkv, dim=2)
        v = mixer.v_proj(x).view(2, 6, Hkv, D).repeat_interleave(H // Hkv, dim=2)
        q, k = (t * cos + torch.cat((-t[..., D // 2 :], t[..., : D // 2]), -1) * sin for t in (q, k))
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(D)
        scores = scores.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
        o = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v) * torch.sigmoid(gate)
        torch.testing.assert_close(mixer(x, (cos, sin)), mixer.o_proj(o.reshape(2, 6, H * D)))


def test_gla_mixer_matches_the_recurrence_written_out():
    model = make_model(["gla"])
    mixer = model.model.layers[0].mixer
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    H, K, V = 4, 4, 8
    q = mixer.q_proj(x).view(2, 5, H, K)
    k = mixer.k_proj(x).view(2, 5, H, K)
    v = mixer.v_proj(x).view(2, 5, H, V)
    g = F.logsigmoid(mixer.gk_proj(x)).view(2, 5, H, K) / 16.0  # fla's default normaliser
    state = torch.zeros(2, H, K, V, dtype=torch.float64)
    outs = []
    for t in range(5):
        state = g[:, t].exp()[..., None] * state + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * K**-0.5, state))
    o = torch.stack(outs, 1)  # (B, T, H, V)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-6) * mixer.g_norm.weight
    o = o * F.silu(mixer.g_proj(x).view(2, 5, H, V))
    torch.testing.assert_close(mixer(x), mixer.o_proj(o.reshape(2, 5, H * V)))


def test_slstm_mixer_is_the_reference_cell_behind_projections():
    model = make_model(["slstm"])
    mixer = model.model.layers[0].mixer
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    wx = mixer.in_proj(x).view(2, 5, 4, 4, 8)  # (B, T, gates, heads, head dim)
    h, _ = slstm(wx, mixer.recurrent_weight, mixer.recurrent_bias, impl="naive")  # the defining loop
    expected = mixer.o_proj(mixer.h_norm(h).reshape(2, 5, 32))
    torch.testing.assert_close(mixer(x), expected)
    forget_bias = mixer.recurrent_bias[1]
    assert forget_bias.min() > 2  # long memory at init survives the test's re-draw (+- noise)


@torch.no_grad()  # as the backend scores; a cache built with autograd holds graph nodes deepcopy refuses
def test_prefix_cache_copies_extend_like_full_forwards():
    """Score several continuations of one prefix from copies of its cache (as the HF backend does)."""
    import copy

    model = make_model(MIXED)
    prefix = _ids(1, 7)[0].tolist()
    conts = [_ids(1, n, seed=n)[0].tolist() for n in (3, 1, 4)]
    shared = copy.deepcopy(model(torch.tensor([prefix]), use_cache=True).cache)
    shared.batch_repeat_interleave(len(conts))
    width = max(len(c) for c in conts)
    ids = torch.zeros(len(conts), width, dtype=torch.long)  # right padded
    mask = torch.zeros(len(conts), len(prefix) + width, dtype=torch.long)
    mask[:, : len(prefix)] = 1
    for i, c in enumerate(conts):
        ids[i, : len(c)] = torch.tensor(c)
        mask[i, len(prefix) : len(prefix) + len(c)] = 1
    out = model(ids, attention_mask=mask, cache=shared).logits
    for i, c in enumerate(conts):
        full = model(torch.tensor([prefix + c])).logits[0, len(prefix) :]
        torch.testing.assert_close(out[i, : len(c)], full, rtol=1e-9, atol=1e-9)


def test_bfloat16_autocast_trains_close_to_float32():
    # rotary cos/sin are float32; q and k must come back in v's dtype under autocast
    model = make_model(["gla", "attn"], dtype=torch.float32).train()
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(0))
    reference = model(input_ids=ids, labels=ids).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - reference.item()) < 0.05 * reference.item()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad
    )
