"""The white-box handle over tiny random Llama / Qwen2 / GatedLM models and the shipped built-in model.

References: the stock model's own forward (the default path must match it exactly), the no-cache
full forward (prefill + token-by-token decode must reproduce it under any layer path), each row run
alone (left padding must not leak), and transformers' ``generate`` (the decode loop's greedy tokens).
"""

from __future__ import annotations

import random

import pytest
import torch
from gated_lm_helpers import make_model
from tiny_models import build_model, build_tokenizer
from transformers import DynamicCache

from reasonkit.models.whitebox import DecodeHooks, WhiteBoxLM, decode, open_whitebox


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def hf_model(tokenizer, family: str, layers: int = 3, dtype: torch.dtype = torch.float64):
    # three layers by default, so paths can skip the middle one
    return build_model(tokenizer, family, seed=3, layers=layers).to(dtype).eval()


FAMILIES = ["llama", "qwen2", "gated"]


@pytest.fixture(scope="module", params=FAMILIES)
def whitebox(request, tokenizer) -> WhiteBoxLM:
    if request.param == "gated":
        return open_whitebox(make_model(["gla", "attn", "slstm", "attn"]).eval())
    return open_whitebox(hf_model(tokenizer, request.param), tokenizer)


def batch(vocab: int, lengths=(7, 4, 9), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded random ids (B, T) and their 0/1 mask."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, width - n :] = torch.randint(3, vocab, (n,), generator=gen)
        mask[r, width - n :] = 1
    return ids, mask


def stock_logits(lm: WhiteBoxLM, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        if lm.family == "gated_lm":
            return lm.model(input_ids=ids, attention_mask=mask).logits
        if mask is None:
            return lm.model(input_ids=ids).logits
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # what generate() passes
        return lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


def handle_logits(lm: WhiteBoxLM, ids, mask=None, path=None) -> torch.Tensor:
    with torch.no_grad():
        return lm.logits(lm.forward(lm.embed(ids), attention_mask=mask, path=path).hidden)


def incremental_logits(lm: WhiteBoxLM, ids, mask, path, prefill: int) -> torch.Tensor:
    """Prefill ``prefill`` columns, then one column per forward, through one cache."""
    with torch.no_grad():
        cache = lm.new_cache(ids.shape[0], path)
        outs = [lm.forward(lm.embed(ids[:, :prefill]), attention_mask=mask[:, :prefill], cache=cache).hidden]
        for t in range(prefill, ids.shape[1]):
            outs.append(
                lm.forward(lm.embed(ids[:, t : t + 1]), attention_mask=mask[:, t : t + 1], cache=cache).hidden
            )
        return lm.logits(torch.cat(outs, dim=1))


def random_paths(num_layers: int, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Paths with repeats and skips; always including: repeat the first and the last layer, skip the
    first and the last layer, a repeated block, and the empty path."""
    L = num_layers
    fixed = [
        (0, 0, *range(1, L)),
        (*range(L), L - 1),
        tuple(range(1, L)),
        tuple(range(L - 1)),
        (*range(L), *range(1, L)),
        (),
    ]
    rng = random.Random(seed)
    drawn = [tuple(rng.randrange(L) for _ in range(rng.randint(1, 2 * L))) for _ in range(count)]
    return fixed + drawn


# ---- the default path ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_default_path_equals_the_stock_model_exactly_in_float32(tokenizer, family):
    if family == "gated":
        model = make_model(["gla", "attn", "slstm", "attn"], dtype=torch.float32).eval()
        lm = open_whitebox(model)
    else:
        lm = open_whitebox(hf_model(tokenizer, family, layers=2, dtype=torch.float32), tokenizer)
    ids, mask = batch(lm.vocab_size)
    assert torch.equal(handle_logits(lm, ids[:1, -7:]), stock_logits(lm, ids[:1, -7:]))  # no padding
    real = mask.bool()
    assert torch.equal(handle_logits(lm, ids, mask)[real], stock_logits(lm, ids, mask)[real])


def test_the_shipped_builtin_model_through_the_handle():
    from reasonkit.backends.loading import load_backend

    backend = load_backend("builtin")
    lm = backend.whitebox
    assert lm.family == "gated_lm" and lm.num_layers == 8
    ids = torch.tensor([backend.tokenizer("48-7*(3+2)")["input_ids"]])
    assert torch.equal(handle_logits(lm, ids), stock_logits(lm, ids))
    path = (0, 1, 1, 2, 3, 4, 5, 6, 7, 7)  # a GLA and an attention layer repeated
    full = handle_logits(lm, ids, path=path)
    inc = incremental_logits(lm, ids, torch.ones_like(ids), path, prefill=3)
    torch.testing.assert_close(inc, full, rtol=1e-4, atol=1e-4)


# ---- layer paths --------------------------------------------------------------------------------


def test_any_path_prefill_plus_decode_equals_the_full_forward(whitebox):
    lm = whitebox
    ids, mask = batch(lm.vocab_size)
    real = mask.bool()
    for path in random_paths(lm.num_layers, 6):
        full = handle_logits(lm, ids, mask, path)
        inc = incremental_logits(lm, ids, mask, path, prefill=4)
        torch.testing.assert_close(inc[real], full[real], rtol=1e-9, atol=1e-9, msg=f"path {path}")


def test_a_left_padded_batch_equals_each_row_alone(whitebox):
    lm = whitebox
    ids, mask = batch(lm.vocab_size)
    for path in random_paths(lm.num_layers, 3, seed=1):
        together = handle_logits(lm, ids, mask, path)
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            alone = handle_logits(lm, ids[r : r + 1, -n:], path=path)
            torch.testing.assert_close(
                together[r, -n:], alone[0], rtol=1e-9, atol=1e-9, msg=f"path {path} row {r}"
            )


def test_a_path_leaves_nothing_behind(whitebox):
    lm = whitebox
    ids, mask = batch(lm.vocab_size)
    before = stock_logits(lm, ids, mask)
    attributes = [(layer, dict(vars(layer))) for layer in lm.layers.modules()]
    for path in random_paths(lm.num_layers, 3, seed=2):
        incremental_logits(lm, ids, mask, path, prefill=5)
    assert torch.equal(stock_logits(lm, ids, mask), before)
    for module, attrs in attributes:
        assert {k: v for k, v in vars(module).items() if not k.startswith("_")} == {
            k: v for k, v in attrs.items() if not k.startswith("_")
        }


def test_a_cache_keyed_by_layer_idx_fails_the_same_check(tokenizer):
    # The public layer-path wrappers reorder the ModuleList and keep transformers' own cache, which keys
    # slots by each module's layer_idx: a repeated layer then shares (and corrupts) one slot.
    model = hf_model(tokenizer, "llama")
    ids, mask = batch(model.config.vocab_size, lengths=(9,))
    path = (0, 1, 1, 2)
    original = model.model.layers

    def naive_logits(chunks: list[tuple[int, int]]) -> torch.Tensor:
        model.model.layers = torch.nn.ModuleList([original[i] for i in path])
        model.config.num_hidden_layers = len(path)
        try:
            cache, outs = DynamicCache(config=model.config), []
            for a, b in chunks:
                out = model(input_ids=ids[:, a:b], cache=cache, use_cache=True)
                outs.append(out.logits)
            return torch.cat(outs, dim=1)
        finally:
            model.model.layers = original
            model.config.num_hidden_layers = len(original)

    with torch.no_grad():
        naive_full = naive_logits([(0, 9)])
        naive_inc = naive_logits([(0, 4), *((t, t + 1) for t in range(4, 9))])
    assert (naive_inc - naive_full).abs().max() > 1e-3  # the stock cache is wrong here
    lm = open_whitebox(model, tokenizer)
    torch.testing.assert_close(
        incremental_logits(lm, ids, mask, path, prefill=4),
        handle_logits(lm, ids, mask, path),
        rtol=1e-9,
        atol=1e-9,
    )


def test_bad_paths_and_masks_are_refused(whitebox):
    lm = whitebox
    ids, mask = batch(lm.vocab_size)
    with pytest.raises(ValueError, match=r"layer indices in \[0, "):
        lm.forward(lm.embed(ids), path=(0, lm.num_layers))
    cache = lm.new_cache(3, (0, 0))
    with pytest.raises(ValueError, match="made for the layer path"):
        lm.forward(lm.embed(ids), path=(0,), cache=cache)
    with pytest.raises(ValueError, match="attention_mask must be"):
        lm.forward(lm.embed(ids), attention_mask=mask[:, :3])
    with pytest.raises(ValueError, match="batch of 3 rows"):
        lm.forward(lm.embed(ids[:2]), cache=cache)


# ---- latent depth -------------------------------------------------------------------------------


def test_a_deeper_pass_sees_shallower_keys_and_never_the_reverse(tokenizer):
    lm = open_whitebox(hf_model(tokenizer, "llama"), tokenizer)
    ids, mask = batch(lm.vocab_size, lengths=(8, 8))
    with torch.no_grad():
        cache = lm.new_cache(2)
        first = lm.forward(lm.embed(ids[:, :5]), attention_mask=mask[:, :5], cache=cache)
        # a depth-1 pass over columns 2 and 4 of each row, fed arbitrary embeddings
        cols = torch.tensor([[2, 4], [2, 4]])
        deep_in = torch.randn(2, 2, lm.hidden_size, dtype=lm.dtype)
        lm.forward(deep_in, cache=cache, depth=1, columns=cols)
        after = lm.forward(lm.embed(ids[:, 5:]), attention_mask=mask[:, 5:], cache=cache).hidden
        # depth causality: the depth-0 continuation is the same as without the depth-1 pass
        plain = lm.forward(lm.embed(ids), attention_mask=mask).hidden
        torch.testing.assert_close(torch.cat([first.hidden, after], 1), plain, rtol=1e-9, atol=1e-9)
        # a depth-1 query at column 4 sees depth-0 keys 0..4 and depth-1 keys at columns 2 and 4:
        # compare with an explicit dense sequence [depth-0 tokens 0..4, depth-1 tokens] under that mask
        cache2 = lm.new_cache(2)
        lm.forward(lm.embed(ids[:, :5]), attention_mask=mask[:, :5], cache=cache2)
        deep = lm.forward(deep_in, cache=cache2, depth=1, columns=cols).hidden
        dense_in = torch.cat([lm.embed(ids[:, :5]), deep_in], dim=1)  # (2, 7, H)
        pos = torch.tensor([0, 1, 2, 3, 4, 2, 4]).expand(2, 7)
        key_col = torch.tensor([0, 1, 2, 3, 4, 2, 4])
        key_depth = torch.tensor([0, 0, 0, 0, 0, 1, 1])
        allowed = (key_col[None, :] <= key_col[:, None]) & (key_depth[None, :] <= key_depth[:, None])
        dense_mask = allowed[None, None].expand(2, 1, 7, 7)
        hidden = dense_in
        emb = lm.model.model.rotary_emb(hidden, position_ids=pos)
        for layer in lm.layers:
            hidden = layer(hidden, attention_mask=dense_mask, position_ids=pos, position_embeddings=emb)
        torch.testing.assert_close(deep, lm.final_norm(hidden)[:, 5:], rtol=1e-9, atol=1e-9)


def test_deeper_passes_through_slstm_layers_are_refused():
    lm = open_whitebox(make_model(["slstm", "attn", "gla"]).eval())
    ids, _ = batch(lm.vocab_size, lengths=(5,))
    cache = lm.new_cache(1)
    lm.forward(lm.embed(ids), cache=cache)
    with pytest.raises(ValueError, match=r"sLSTM layers \[0\]"):
        lm.forward(lm.embed(ids[:, :1]), cache=cache, depth=1, columns=torch.tensor([[2]]))
    # GLA and attention layers take deeper passes (tests/models/test_gla_depth.py checks GLA's rule)
    without_slstm = lm.new_cache(1, (1, 2))
    lm.forward(lm.embed(ids), cache=without_slstm)
    lm.forward(lm.embed(ids[:, :1]), cache=without_slstm, depth=1, columns=torch.tensor([[2]]))


# ---- the decode loop ----------------------------------------------------------------------------


def generate_tokens(lm: WhiteBoxLM, prompts: list[list[int]], n: int, eos: int) -> list[list[int]]:
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :], mask[r, width - len(p) :] = torch.tensor(p), 1
    out = lm.model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=eos,
    )
    rows = []
    for r in range(len(prompts)):
        tokens = out[r, width:].tolist()
        rows.append(tokens[: tokens.index(eos) + 1] if eos in tokens else tokens)
    return rows


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_decode_equals_generate_on_the_default_path(tokenizer, family):
    if family == "gated":
        lm = open_whitebox(make_model(["gla", "attn", "slstm", "attn"], dtype=torch.float32).eval())
    else:
        lm = open_whitebox(hf_model(tokenizer, family, layers=2, dtype=torch.float32), tokenizer)
    ids, mask = batch(lm.vocab_size)
    prompts = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    eos = 2
    rows = decode(lm, prompts, max_new_tokens=12, eos_ids={eos})
    assert [r.tokens for r in rows] == generate_tokens(lm, prompts, 12, eos)
    assert all(r.finish_reason == ("stop" if r.tokens[-1] == eos else "length") for r in rows)


class Identity(DecodeHooks):
    """Feeds the chosen tokens' own embeddings: must change nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def next_inputs(self, lm, step, tokens):
        self.calls += 1
        return lm.embed(tokens)


class Forcing(DecodeHooks):
    """Refine: always choose token 5 (checks the hook's logits are the ones used)."""

    def refine(self, lm, step):
        forced = torch.full_like(step.logits, -1e9)
        forced[:, 5] = 0
        return forced


def test_hooks_that_change_nothing_change_nothing(whitebox):
    lm = whitebox
    prompts = [[5, 9, 11, 4], [7, 8]]
    plain = decode(lm, prompts, max_new_tokens=8, path=(0, 0, 1))
    identity = Identity()
    assert decode(lm, prompts, max_new_tokens=8, path=(0, 0, 1), hooks=DecodeHooks()) == plain
    assert decode(lm, prompts, max_new_tokens=8, path=(0, 0, 1), hooks=identity) == plain
    assert identity.calls == 7  # one per step after the first token, for the last is never fed
    forced = decode(lm, prompts, max_new_tokens=4, hooks=Forcing())
    assert [r.tokens for r in forced] == [[5] * 4, [5] * 4]


def test_sampled_decode_is_reproducible_per_row(whitebox):
    from reasonkit.models.sampling import row_generator

    lm = whitebox
    prompts = [[5, 9, 11, 4], [7, 8]]

    def run(rows):
        return decode(
            lm,
            rows,
            max_new_tokens=6,
            temperature=1.0,
            generators=[row_generator(3, j) for j in range(len(rows))],
        )

    together = run(prompts)
    assert run(prompts) == together
    assert run(prompts[:1])[0] == together[0]  # a seeded row does not depend on its batch


class Recording(DecodeHooks):
    """Records what each row generated, and scores with flat logits (every token equally likely)."""

    def row_meta(self, row, generated):
        return {"row": row, "generated": generated}

    def score_logits(self, lm, ids, attention_mask, path, first_scored):
        return torch.zeros(*ids.shape, lm.vocab_size)


def test_hooks_record_per_row_meta_and_own_the_scoring_forward(tokenizer):
    import math

    from reasonkit.backends.hf import HFBackend
    from reasonkit.types import SamplingParams

    model = hf_model(tokenizer, "llama", layers=2, dtype=torch.float32)
    rows = decode(open_whitebox(model, tokenizer), [[5, 9, 11], [7]], max_new_tokens=3, hooks=Recording())
    assert [r.meta for r in rows] == [{"row": 0, "generated": 3}, {"row": 1, "generated": 3}]
    backend = HFBackend(model, tokenizer, hooks=Recording())
    completion = backend.generate(["hello"], SamplingParams(max_new_tokens=4))[0][0]
    assert completion.meta == {"row": 0, "generated": completion.tokens_out}
    n = len(tokenizer(" there", add_special_tokens=False)["input_ids"])
    (score,) = backend.loglikelihood("hello", [" there"])
    assert score == pytest.approx(-n * math.log(model.config.vocab_size))
    plain = HFBackend(model, tokenizer, hooks=DecodeHooks()).loglikelihood("hello", [" there"])[0]
    assert plain != pytest.approx(score)
