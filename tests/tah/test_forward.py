"""The Think-at-Hard forward against references: the plain model, a dense duo-causal sequence, a
teacher-forced pass, and hand-computed soft inputs (tiny random Llama / Qwen2 / GatedLM)."""

from __future__ import annotations

import pytest
import torch
from tah_helpers import FAMILIES, left_padded, random_hard, tah_model

from reasonkit.tah import passes as passes_module
from reasonkit.tah.passes import dense_logits, first_pass, run_deeper, soft_embedding


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stock_logits(lm, ids, mask):
    with torch.no_grad():
        if lm.family == "gated_lm":
            return lm.model(input_ids=ids, attention_mask=mask).logits
        return lm.model(
            input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)
        ).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_a_decider_that_never_continues_gives_the_base_models_logits_exactly(family):
    model = tah_model(family, threshold=1.0, dtype=torch.float32)
    ids, mask = left_padded(model.lm.vocab_size)
    with torch.no_grad():
        passes = model.run(ids, mask, mask.bool())
    assert len(passes) == 1
    real = mask.bool()
    assert torch.equal(dense_logits(passes, *ids.shape)[real], stock_logits(model.lm, ids, mask)[real])


def dense_reference(model, ids, mask, hard):
    """Depth-2 logits of the hard tokens from ONE plain pass over [every depth-1 token; the hard tokens'
    depth-2 inputs] under the duo-causal mask, per row (attention-only models, adapters off)."""
    lm = model.lm
    with torch.no_grad():
        z0 = lm.logits(lm.forward(lm.embed(ids), attention_mask=mask).hidden)
        out = {}
        for b in range(ids.shape[0]):
            cols = hard[b].nonzero().flatten()
            T, n = ids.shape[1], len(cols)
            deep_in = soft_embedding(z0[b, cols], lm.embedding_matrix, model.config.top_k)
            hidden = torch.cat([lm.embed(ids[b : b + 1]), deep_in[None]], dim=1)  # (1, T + n, H)
            real_pos = (mask[b].cumsum(0) - 1).clamp(min=0)
            pos = torch.cat([real_pos, real_pos[cols]])[None]
            key_col = torch.cat([torch.arange(T), cols])
            key_depth = torch.cat([torch.zeros(T, dtype=torch.long), torch.ones(n, dtype=torch.long)])
            key_valid = torch.cat([mask[b].bool(), torch.ones(n, dtype=torch.bool)])
            allowed = (
                (key_col[None] <= key_col[:, None])
                & (key_depth[None] <= key_depth[:, None])
                & key_valid[None]
            )
            allowed |= torch.eye(T + n, dtype=torch.bool)  # pads see themselves: no row without keys (NaN)
            if lm.family == "gated_lm":
                rotary = lm.model.model.rotary(pos, hidden.dtype)
                for layer in lm.layers:
                    hidden = layer(hidden, key_mask=allowed[None], rotary=rotary)
            else:
                emb = lm.model.model.rotary_emb(hidden, position_ids=pos)
                for layer in lm.layers:
                    hidden = layer(
                        hidden, attention_mask=allowed[None, None], position_ids=pos, position_embeddings=emb
                    )
                    hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            z1 = z0[b, cols] + lm.logits(lm.final_norm(hidden)[0, T:])
            out.update({(b, int(c)): z1[i] for i, c in enumerate(cols)})
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_packed_forward_equals_a_dense_duo_causal_sequence(family, seed):
    model = tah_model(family, lora=False, top_k=5, eligible="all", layers=("attn", "attn"))
    ids, mask = left_padded(model.lm.vocab_size, seed=seed)
    depths = random_hard(mask, seed=seed)
    with torch.no_grad():
        passes = model.run(ids, mask, mask.bool(), route="oracle", oracle=depths)
    deep = passes[1]
    got = {
        (int(r), int(c)): deep.logits[i, j]
        for i, r in enumerate(deep.rows)
        for j, c in enumerate(deep.columns[i])
        if deep.valid[i, j]
    }
    expected = dense_reference(model, ids, mask, depths > 1)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family", ["llama", "gated"])
def test_perturbing_a_second_pass_input_changes_only_that_token_and_later_ones(family, monkeypatch):
    model = tah_model(family, eligible="all")
    ids, mask = left_padded(model.lm.vocab_size, lengths=(9, 9))
    depths = random_hard(mask, rate=0.6, seed=2)
    depths[0, 4] = 2
    with torch.no_grad():
        base = model.run(ids, mask, mask.bool(), route="oracle", oracle=depths)
        real = soft_embedding

        def nudged(logits, embedding, top_k):  # row 0's token at column 4 gets another second-pass input
            out = real(logits, embedding, top_k).clone()
            out[0, (depths[0] > 1).nonzero().flatten().tolist().index(4)] += 0.5
            return out

        monkeypatch.setattr(passes_module, "soft_embedding", nudged)
        moved = model.run(ids, mask, mask.bool(), route="oracle", oracle=depths)
    assert torch.equal(moved[0].logits, base[0].logits)  # every first-pass logit
    d0, d1 = dense_logits(base, *ids.shape), dense_logits(moved, *ids.shape)
    hard = depths > 1
    assert torch.equal(d1[0, :4][hard[0, :4]], d0[0, :4][hard[0, :4]])  # earlier second passes
    assert torch.equal(d1[1], d0[1])  # the other row
    assert not torch.allclose(d1[0, 4], d0[0, 4])


def incremental(model, ids, mask, depths, prefill: int):
    """Prefill ``prefill`` columns, then one column per step, deeper passes routed by ``depths``."""
    lm = model.lm
    B, T = ids.shape
    router = model.router("oracle", depths)
    eligible = mask.bool()
    cache = lm.new_cache(B)
    logits = []
    with torch.no_grad():
        for lo, hi in [(0, prefill), *((t, t + 1) for t in range(prefill, T))]:
            out = lm.forward(lm.embed(ids[:, lo:hi]), attention_mask=mask[:, lo:hi], cache=cache)
            cols = torch.arange(lo, hi).expand(B, hi - lo)
            passes = run_deeper(
                model, first_pass(model, out, cols, mask[:, lo:hi].bool()), cache, eligible[:, lo:], router
            )
            logits.append(dense_logits(passes, B, hi - lo, lo))
    return torch.cat(logits, 1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("max_depth", [2, 3])
def test_prefill_then_decode_with_a_fixed_hard_mask_equals_the_teacher_forced_forward(family, max_depth):
    if family != "gated" and max_depth == 3:
        pytest.skip("depth 3 through attention is the same code; GatedLM also covers GLA")
    model = tah_model(family, eligible="all", max_depth=max_depth)
    ids, mask = left_padded(model.lm.vocab_size, lengths=(9, 6, 8), seed=5)
    depths = random_hard(mask, rate=0.5, seed=5, max_depth=max_depth)
    with torch.no_grad():
        forced = dense_logits(model.run(ids, mask, mask.bool(), route="oracle", oracle=depths), *ids.shape)
    stepped = incremental(model, ids, mask, depths, prefill=4)
    real = mask.bool()
    torch.testing.assert_close(stepped[real], forced[real], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family", ["llama", "gated"])
def test_lora_acts_from_the_second_pass_only(family):
    model = tah_model(family, eligible="all", dtype=torch.float32)
    ids, mask = left_padded(model.lm.vocab_size)
    depths = random_hard(mask, seed=1)
    with torch.no_grad():
        live = model.run(ids, mask, mask.bool(), route="oracle", oracle=depths)
        for name, p in model.lm.model.named_parameters():
            if "lora_B" in name:
                p.zero_()
        silent = model.run(ids, mask, mask.bool(), route="oracle", oracle=depths)
    real = mask.bool()
    assert torch.equal(live[0].logits[real], stock_logits(model.lm, ids, mask)[real])
    assert torch.equal(live[0].logits, silent[0].logits)
    assert not torch.allclose(live[1].logits, silent[1].logits)


def test_no_gradient_reaches_the_adapters_when_no_token_iterates():
    model = tah_model("gated", dtype=torch.float32).train()
    ids, _ = left_padded(model.lm.vocab_size, lengths=(8, 8))
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), -100)], 1)
    never = {"input_ids": ids, "targets": targets, "oracle": torch.ones_like(ids)}
    model(never)["loss"].backward()
    lora = [p for n, p in model.lm.model.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is None or not p.grad.any() for p in lora)
    some = {**never, "oracle": random_hard(torch.ones_like(ids), seed=3)}
    model.zero_grad()
    model(some)["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)


def test_the_soft_input_is_the_argmax_row_at_top1_and_the_full_softmax_at_top_v():
    gen = torch.Generator().manual_seed(0)
    logits, table = (
        torch.randn(3, 5, 11, generator=gen, dtype=torch.float64),
        torch.randn(11, 7, dtype=torch.float64),
    )
    torch.testing.assert_close(soft_embedding(logits, table, 1), table[logits.argmax(-1)])
    torch.testing.assert_close(soft_embedding(logits, table, 11), torch.softmax(logits, -1) @ table)
    torch.testing.assert_close(
        soft_embedding(logits, table, 500), torch.softmax(logits, -1) @ table
    )  # capped at V
    top3 = logits.topk(3, -1)
    by_hand = (torch.softmax(top3.values, -1)[..., None] * table[top3.indices]).sum(-2)
    torch.testing.assert_close(soft_embedding(logits, table, 3), by_hand)
