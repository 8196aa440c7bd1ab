"""Latent depths through GLA layers, and the ragged per-row deeper cache.

The specification is the duo-causal rule written as an explicit double sum: a query at (column i,
depth d) reads every (j, d') with j <= i and d' in the attended depths, each term decayed by the
depth-0 gates between j and i (reasonkit/models/whitebox/gla_depth.py). Three forms must agree: that
sum, the chunked two-scan form the white-box forward runs, and incremental decoding (prefill, then
one column per step, deeper passes over only the rows that iterate).
"""

from __future__ import annotations

import pytest
import torch
from gated_lm_helpers import left_pad, make_model
from tiny_models import build_model, build_tokenizer

from reasonkit.models.whitebox import open_whitebox


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def explicit_gla(q, keys, values, masks, g0, scale):
    """o_i = scale · q_i Σ_{j<=i} Σ_depths exp(Σ_{t=j+1..i} g0_t) ⊙ k_j v_jᵀ m_j, as a plain loop."""
    B, T, H, _ = q.shape
    out = torch.zeros(B, T, H, values[0].shape[-1], dtype=q.dtype)
    for i in range(T):
        for j in range(i + 1):
            decay = g0[:, j + 1 : i + 1].sum(1).exp()  # (B, H, K)
            for k, v, m in zip(keys, values, masks):
                weight = (q[:, i] * scale * decay * k[:, j]).sum(-1)  # (B, H)
                out[:, i] += weight[..., None] * v[:, j] * m[:, j, None, None]
    return out


def explicit_forward(model, embeds, mask, deep_inputs, deep_masks, attend):
    """Hidden states of every depth of a GLA-only GatedLM by the double sum, all columns at once.

    ``deep_inputs[d-1]`` (B, T, hidden) is depth d's input at every column (used where
    ``deep_masks[d-1]`` (B, T) is True); returns the normed hidden states of each depth, (B, T, hidden).
    """
    hidden = [embeds, *deep_inputs]
    masks = [mask.bool(), *deep_masks]
    for layer in model.model.layers:
        mixer = layer.mixer
        xs = [layer.input_norm(h) for h in hidden]
        projected = [mixer.project(x, m) for x, m in zip(xs, masks)]
        g0 = projected[0][3]
        scale = mixer.head_k_dim**-0.5
        new = []
        for d, (x, (q, _, _, _)) in enumerate(zip(xs, projected)):
            seen = (0,) if d == 0 else attend(d)
            o = explicit_gla(
                q,
                [projected[e][1] for e in seen],
                [projected[e][2] for e in seen],
                [masks[e].to(q.dtype) for e in seen],
                g0,
                scale,
            )
            h = hidden[d] + mixer.readout(x, o)
            new.append(h + layer.mlp(layer.post_mixer_norm(h)))
        hidden = new
    return [model.model.norm(h) for h in hidden]


def pack(chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) bool -> left-packed columns (B, n) and their validity (rows padded with column 0)."""
    n = max(1, int(chosen.sum(1).max()))
    cols = torch.zeros(chosen.shape[0], n, dtype=torch.long)
    valid = torch.zeros(chosen.shape[0], n, dtype=torch.bool)
    for r in range(chosen.shape[0]):
        where = chosen[r].nonzero().flatten()
        cols[r, : len(where)], valid[r, : len(where)] = where, True
    return cols, valid


ATTEND = {"duo": lambda d: tuple(range(d + 1)), "root": lambda d: (0,), "same": lambda d: (d,)}


@pytest.mark.parametrize("mode", sorted(ATTEND))
def test_chunked_deeper_passes_equal_the_explicit_duo_causal_sum(mode):
    model = make_model(["gla", "gla"])
    lm = open_whitebox(model)
    gen = torch.Generator().manual_seed(1)
    ids, mask = left_pad([[5, 9, 11, 4, 7, 30, 8], [7, 8, 12, 40]])
    B, T = ids.shape
    hard1 = (torch.rand(B, T, generator=gen) < 0.5) & mask.bool()
    hard1[1, -1] = True
    hard2 = hard1 & (torch.rand(B, T, generator=gen) < 0.6)
    hard2[0, -1] = hard1[0, -1] = True
    deep = [torch.randn(B, T, lm.hidden_size, generator=gen, dtype=lm.dtype) for _ in range(2)]
    attend = ATTEND[mode]
    with torch.no_grad():
        expected = explicit_forward(model, lm.embed(ids), mask, deep, [hard1, hard2], attend)
        cache = lm.new_cache(B)
        out0 = lm.forward(lm.embed(ids), attention_mask=mask, cache=cache).hidden
        outs = [out0]
        for d, hard in ((1, hard1), (2, hard2)):
            cols, valid = pack(hard)
            packed_in = deep[d - 1].gather(1, cols[..., None].expand(-1, -1, lm.hidden_size))
            out = lm.forward(
                packed_in, attention_mask=valid.long(), cache=cache, depth=d, columns=cols, attend=attend(d)
            )
            full = torch.zeros_like(out0).scatter(
                1, cols[..., None].expand(-1, -1, lm.hidden_size), out.hidden
            )
            outs.append(full)
    real = mask.bool()
    torch.testing.assert_close(outs[0][real], expected[0][real], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(outs[1][hard1], expected[1][hard1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(outs[2][hard2], expected[2][hard2], rtol=1e-9, atol=1e-9)


def _model(kind: str):
    if kind == "llama":
        tokenizer = build_tokenizer()
        return open_whitebox(build_model(tokenizer, "llama", seed=2, layers=2).double().eval(), tokenizer)
    return open_whitebox(make_model(["gla", "attn", "gla"]))


@pytest.mark.parametrize("kind", ["gated", "llama"])
def test_incremental_decode_with_row_subsets_equals_the_chunked_form(kind):
    lm = _model(kind)
    gen = torch.Generator().manual_seed(4)
    ids, mask = left_pad([[5, 9, 11, 4, 7, 30, 8, 13, 21], [7, 8, 12, 40, 41, 3], [9, 9, 10, 11, 12, 13, 14]])
    B, T = ids.shape
    hard = (torch.rand(B, T, generator=gen) < 0.4) & mask.bool()
    hard[:, -1] = True
    hard[2, 2:6] = False  # a row that skips several steps keeps owing its deeper state their decay
    deep = torch.randn(B, T, lm.hidden_size, generator=gen, dtype=lm.dtype)
    prefill = 4
    with torch.no_grad():
        cache = lm.new_cache(B)
        chunk0 = lm.forward(lm.embed(ids), attention_mask=mask, cache=cache).hidden
        cols, valid = pack(hard)
        packed = deep.gather(1, cols[..., None].expand(-1, -1, lm.hidden_size))
        chunk1 = lm.forward(packed, attention_mask=valid.long(), cache=cache, depth=1, columns=cols).hidden
        expected = {(r, int(c)): chunk1[r, i] for r in range(B) for i, c in enumerate(cols[r]) if valid[r, i]}

        cache = lm.new_cache(B)
        step0 = [lm.forward(lm.embed(ids[:, :prefill]), attention_mask=mask[:, :prefill], cache=cache).hidden]
        got = {}
        c1, v1 = pack(hard[:, :prefill])
        if bool(v1.any()):
            p1 = deep.gather(1, c1[..., None].expand(-1, -1, lm.hidden_size))
            h1 = lm.forward(p1, attention_mask=v1.long(), cache=cache, depth=1, columns=c1).hidden
            got.update({(r, int(c)): h1[r, i] for r in range(B) for i, c in enumerate(c1[r]) if v1[r, i]})
        for t in range(prefill, T):
            step0.append(
                lm.forward(lm.embed(ids[:, t : t + 1]), attention_mask=mask[:, t : t + 1], cache=cache).hidden
            )
            rows = hard[:, t].nonzero().flatten()
            if rows.numel():
                cols_t = torch.full((rows.numel(), 1), t)
                h1 = lm.forward(deep[rows, t : t + 1], cache=cache, depth=1, columns=cols_t, rows=rows).hidden
                got.update({(int(r), t): h1[i, 0] for i, r in enumerate(rows)})
        counts = cache.row_counts(1)
    real = mask.bool()
    torch.testing.assert_close(torch.cat(step0, 1)[real], chunk0[real], rtol=1e-9, atol=1e-9)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-9, atol=1e-9)
    # each row's depth-1 slots hold its own re-run tokens only (ragged), never another row's
    assert counts.tolist() == hard.sum(1).tolist()


def test_a_rows_deeper_slots_grow_only_when_that_row_iterates():
    lm = _model("llama")
    ids, mask = left_pad([[5, 9, 11], [7, 8, 12]])
    with torch.no_grad():
        cache = lm.new_cache(2)
        lm.forward(lm.embed(ids), attention_mask=mask, cache=cache)
        for t in range(3):
            lm.forward(lm.embed(torch.tensor([[20 + t], [30 + t]])), cache=cache)
            lm.forward(
                lm.embed(torch.tensor([[40]])),
                cache=cache,
                depth=1,
                columns=torch.tensor([[3 + t]]),
                rows=torch.tensor([0]),
            )
    assert cache.row_counts(1).tolist() == [3, 0]
    cols, _, valid = cache.entries(1)
    assert cols.shape == (2, 3) and valid.tolist() == [[True] * 3, [False] * 3]


def test_deeper_gla_passes_outside_the_latest_chunk_are_refused():
    lm = open_whitebox(make_model(["gla", "attn"]))
    ids, _ = left_pad([[5, 9, 11, 4]])
    cache = lm.new_cache(1)
    with torch.no_grad():
        lm.forward(lm.embed(ids), cache=cache)
        lm.forward(lm.embed(torch.tensor([[6]])), cache=cache)
        with pytest.raises(ValueError, match="latest depth-0 forward only"):
            lm.forward(lm.embed(torch.tensor([[6]])), cache=cache, depth=1, columns=torch.tensor([[2]]))
        lm.forward(lm.embed(torch.tensor([[6]])), cache=cache, depth=1, columns=torch.tensor([[4]]))
        with pytest.raises(ValueError, match="already ran a depth-1 pass"):
            lm.forward(lm.embed(torch.tensor([[6]])), cache=cache, depth=1, columns=torch.tensor([[4]]))
    with pytest.raises(ValueError, match="extends every row"):
        lm.forward(lm.embed(ids), cache=lm.new_cache(1), rows=torch.tensor([0]))


def test_nbytes_counts_what_the_cache_holds():
    lm = open_whitebox(make_model(["gla", "attn"]))
    ids, _ = left_pad([[5, 9, 11, 4]])
    cache = lm.new_cache(1)
    with torch.no_grad():
        lm.forward(lm.embed(ids), cache=cache)
        before = cache.nbytes()
        kv = sum(t.numel() * t.element_size() for s in cache._kv.values() for t in (s.keys, s.values))
        state = cache._states[(0, 0)][0]
        assert before >= kv + state.numel() * state.element_size()
        lm.forward(lm.embed(torch.tensor([[6]])), cache=cache, depth=1, columns=torch.tensor([[3]]))
    # a deeper pass adds a depth-1 GLA state, depth-1 keys/values and its chunk record
    assert cache.nbytes() > before + state.numel() * state.element_size()
