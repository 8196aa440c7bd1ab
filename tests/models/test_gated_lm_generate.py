"""GatedLM generation through transformers' generate(): greedy, padded batches, beams, sampling, step kernels."""

from __future__ import annotations

import pytest
import torch
from gated_lm_helpers import VOCAB, left_pad, make_model

import reasonkit.models.gated_lm.gla as gla_module
import reasonkit.models.gated_lm.slstm as slstm_module

MIXED = ["gla", "attn", "slstm", "gla"]
NEW = 6


def _rows(lengths: tuple[int, ...], seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (n,), generator=gen).tolist() for n in lengths]


def _greedy_by_full_forwards(model, row: list[int], steps: int, **forward_kwargs) -> tuple[list[int], list]:
    """The definition of greedy decoding: rerun the whole prefix, take the argmax, repeat."""
    seq, logits = list(row), []
    for _ in range(steps):
        last = model(torch.tensor([seq]), use_cache=False, **forward_kwargs).logits[0, -1]
        logits.append(last)
        seq.append(int(last.argmax()))
        if seq[-1] == model.config.eos_token_id:
            break
    return seq[len(row) :], logits


def test_greedy_generate_equals_argmax_over_full_forwards():
    model = make_model(MIXED)
    row = _rows((8,))[0]
    out = model.generate(
        torch.tensor([row]),
        max_new_tokens=NEW,
        do_sample=False,
        return_dict_in_generate=True,
        output_logits=True,
    )
    expected, expected_logits = _greedy_by_full_forwards(model, row, NEW)
    assert out.sequences[0, len(row) :].tolist() == expected
    for got, ref in zip(out.logits, expected_logits):
        torch.testing.assert_close(got[0].double(), ref.double(), rtol=1e-6, atol=1e-6)


def test_left_padded_batch_generates_what_each_row_generates_alone():
    model = make_model(MIXED)
    rows = _rows((9, 3, 6, 1, 9), seed=1)
    ids, mask = left_pad(rows)
    batched = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    pad = model.config.pad_token_id
    for i, row in enumerate(rows):
        alone = model.generate(torch.tensor([row]), max_new_tokens=NEW, do_sample=False)[
            0, len(row) :
        ].tolist()
        got = batched[i, ids.shape[1] :].tolist()
        assert got[: len(alone)] == alone
        assert all(t == pad for t in got[len(alone) :])  # a row that stopped at eos is padded after it


def test_cached_decoding_equals_uncached_for_greedy_and_beam_search():
    model = make_model(MIXED)
    ids, mask = left_pad(_rows((7, 4), seed=2))
    for kwargs in (dict(do_sample=False), dict(do_sample=False, num_beams=3, num_return_sequences=2)):
        cached = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, use_cache=True, **kwargs)
        uncached = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, use_cache=False, **kwargs)
        assert torch.equal(cached, uncached), kwargs


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = make_model(MIXED)
    ids, mask = left_pad(_rows((5, 8), seed=3))
    kwargs = dict(attention_mask=mask, max_new_tokens=NEW, do_sample=True, temperature=1.5)
    torch.manual_seed(7)
    first = model.generate(ids, num_return_sequences=3, **kwargs)
    torch.manual_seed(7)
    again = model.generate(ids, num_return_sequences=3, **kwargs)
    assert first.shape[0] == 6 and torch.equal(first, again)
    assert int(first.min()) >= 0 and int(first.max()) < VOCAB
    assert len({tuple(r) for r in first[:3, ids.shape[1] :].tolist()}) > 1  # samples differ
    top1 = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=True, top_k=1)
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(top1, greedy)


def test_decoding_runs_the_kernels_step_functions(monkeypatch):
    calls = {"gla_step": 0, "slstm_step": 0, "gla_prefill": 0}
    real_gla_step, real_slstm_step = gla_module.gla_step, slstm_module.slstm_step
    real_pick = gla_module.pick_kernel

    def gla_step(*args, **kwargs):
        calls["gla_step"] += 1
        return real_gla_step(*args, **kwargs)

    def slstm_step(*args, **kwargs):
        calls["slstm_step"] += 1
        return real_slstm_step(*args, **kwargs)

    def pick_kernel(*args, **kwargs):
        calls["gla_prefill"] += 1
        return real_pick(*args, **kwargs)

    monkeypatch.setattr(gla_module, "gla_step", gla_step)
    monkeypatch.setattr(slstm_module, "slstm_step", slstm_step)
    monkeypatch.setattr(gla_module, "pick_kernel", pick_kernel)
    model = make_model(MIXED)
    ids, mask = left_pad(_rows((5, 2)))  # padding in the prompt must not push decoding off the step path
    model.generate(ids, attention_mask=mask, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False)
    # prefill once per GLA layer, then one step per layer per new token after the first
    assert calls == {"gla_prefill": 2, "gla_step": 2 * (NEW - 1), "slstm_step": NEW - 1}


def test_generate_with_a_layer_order_that_repeats_layers():
    model = make_model(MIXED)
    order = [0, 1, 1, 3, 2]
    row = _rows((6,), seed=4)[0]
    out = model.generate(torch.tensor([row]), max_new_tokens=NEW, do_sample=False, layer_order=order)
    expected, _ = _greedy_by_full_forwards(model, row, NEW, layer_order=order)
    assert out[0, len(row) :].tolist() == expected
    default = model.generate(torch.tensor([row]), max_new_tokens=NEW, do_sample=False)
    assert not torch.equal(out, default)


def test_generate_from_inputs_embeds_equals_from_ids():
    model = make_model(MIXED)
    ids, mask = left_pad(_rows((6, 4), seed=5))
    embeds = model.get_input_embeddings()(ids)
    from_embeds = model.generate(
        inputs_embeds=embeds, attention_mask=mask, max_new_tokens=NEW, do_sample=False
    )
    from_ids = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(from_embeds, from_ids[:, ids.shape[1] :])  # embeds in, only new tokens out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_left_padded_batch_in_low_precision(dtype):
    """The built-in model serves batches of 32-128 left-padded prompts in float32 / bfloat16."""
    model = make_model(["gla", "gla", "attn"], dtype=dtype)
    lengths = tuple(int(n) for n in torch.randint(1, 24, (48,), generator=torch.Generator().manual_seed(6)))
    ids, mask = left_pad(_rows(lengths, seed=6))
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=4,
        do_sample=False,
        return_dict_in_generate=True,
        output_logits=True,
    )
    assert out.sequences.shape[0] == 48
    for i in (0, 17, 47):  # first-step logits of a few rows against the row alone
        alone = model(torch.tensor([_rows(lengths, seed=6)[i]])).logits[0, -1].float()
        torch.testing.assert_close(
            out.logits[0][i],
            alone,
            rtol=0.05 if dtype == torch.bfloat16 else 1e-4,
            atol=0.05 if dtype == torch.bfloat16 else 1e-4,
        )


@pytest.mark.parametrize("layer_types", [["gla", "slstm"], MIXED])
def test_generate_continues_from_a_returned_cache(layer_types):
    """Multi-turn: pass the cache back with the whole conversation; only the new part is run."""
    model = make_model(layer_types)
    ids, mask = left_pad(_rows((5, 8), seed=8))
    first = model.generate(
        ids, attention_mask=mask, max_new_tokens=3, min_new_tokens=3, return_dict_in_generate=True
    )
    follow_up = torch.tensor([[11, 12], [13, 14]])
    turn2 = torch.cat([first.sequences, follow_up], dim=1)
    mask2 = torch.cat([mask, torch.ones(2, turn2.shape[1] - mask.shape[1], dtype=mask.dtype)], dim=1)
    continued = model.generate(
        turn2, attention_mask=mask2, cache=first.cache, max_new_tokens=NEW, do_sample=False
    )
    fresh = model.generate(turn2, attention_mask=mask2, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(continued, fresh)
