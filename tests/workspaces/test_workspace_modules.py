"""Addition modules against plain-loop references; data splits of the study."""

import pytest
import torch

from reasonkit.workspaces.addition import SPLITS, AdditionTask, DigitPool, make_pairs
from reasonkit.workspaces.number_modules import (
    DigitEncoder,
    InputModule,
    LearnedShiftIncrement,
    MLPIncrement,
    Readout,
    ShiftIncrement,
    number_code,
)
from reasonkit.workspaces.state import WorkspaceState


def state_of(vector: torch.Tensor) -> WorkspaceState:
    return WorkspaceState(vector, torch.zeros(len(vector), 1))


def test_shift_increment_moves_the_value_slot_only():
    values = torch.tensor([[0, 3], [5, 1], [9, 9]])
    state = state_of(number_code(values, 10))
    out = ShiftIncrement(slot=0)(state).vector
    assert out[:2, 0].argmax(-1).tolist() == [1, 6]
    assert out[2, 0].sum() == 0  # 9 + 1 falls off a number line of 10
    assert torch.equal(out[:, 1], state.vector[:, 1])


def test_learned_shift_matches_a_loop_reference():
    torch.manual_seed(0)
    module = LearnedShiftIncrement(slot=1, reach=2)
    with torch.no_grad():
        module.shift_logits.copy_(torch.randn(5))
    vector = torch.rand(3, 2, 12)
    out = module(state_of(vector)).vector
    weights = torch.softmax(module.shift_logits, 0)  # index i is shift i - 2
    ref = torch.zeros(3, 12)
    for n in range(12):
        for i, k in enumerate(range(-2, 3)):
            if 0 <= n - k < 12:
                ref[:, n] += weights[i] * vector[:, 1, n - k]
    torch.testing.assert_close(out[:, 1], ref)
    torch.testing.assert_close(out[:, 0], vector[:, 0])


def test_learned_shift_concentrated_on_plus_one_is_the_hand_designed_increment():
    module = LearnedShiftIncrement(slot=0, reach=2)
    with torch.no_grad():
        module.shift_logits.copy_(torch.tensor([-1e4, -1e4, -1e4, 0.0, -1e4]))
    state = state_of(number_code(torch.tensor([[0, 2], [7, 0]]), 10))
    torch.testing.assert_close(module(state).vector, ShiftIncrement(slot=0)(state).vector)


def test_mlp_increment_and_readout():
    state = state_of(number_code(torch.tensor([[2, 0], [4, 1]]), 10))
    out = MLPIncrement(10, slot=0)(state).vector
    torch.testing.assert_close(out[:, 0].sum(-1), torch.ones(2))  # a distribution on the number line
    readout = Readout(slot=0, floor=1e-4).readout(state)
    assert readout.argmax(-1).tolist() == [2, 4]
    torch.testing.assert_close(readout.exp().sum(-1), torch.ones(2))
    assert float(readout[0, 3]) == pytest.approx(torch.log(torch.tensor(1e-4 / (1 + 10e-4))).item(), rel=1e-5)
    with pytest.raises(ValueError, match="floor"):
        Readout(floor=0.0)


def test_input_module_with_the_digit_encoder():
    encoder = DigitEncoder(code_size=20)
    images = torch.rand(4, 2, 64)
    state = WorkspaceState.empty(images, slots=2, width=20)
    out = InputModule(encoder)(state).vector
    assert out.shape == (4, 2, 20)
    torch.testing.assert_close(out.sum(-1), torch.ones(4, 2))
    assert out[..., 10:].abs().sum() == 0  # digits only occupy 0..9
    with pytest.raises(ValueError, match="8×8"):
        encoder(torch.rand(4, 2, 63))


def test_splits_are_fixed_disjoint_and_cover_their_ranges():
    pairs = make_pairs(10, 20, 0.2, split_seed=7)
    assert set(pairs) == set(SPLITS)
    assert torch.equal(pairs["train"], make_pairs(10, 20, 0.2, split_seed=7)["train"])
    assert not torch.equal(pairs["train"], make_pairs(10, 20, 0.2, split_seed=8)["train"])
    train = {tuple(p) for p in pairs["train"].tolist()}
    interp = {tuple(p) for p in pairs["interpolation"].tolist()}
    assert len(train) == 80 and len(interp) == 20 and not train & interp
    assert train | interp == {(a, b) for a in range(10) for b in range(10)}
    extrap = pairs["extrapolation"]
    assert len(extrap) == 100 and extrap[:, 0].min() == 10 and extrap[:, 1].max() == 9
    assert int(extrap.sum(-1).max()) > 18  # sums beyond the training maximum
    extrap_b = pairs["extrapolation_b"]
    assert len(extrap_b) == 200 and extrap_b[:, 1].min() == 10
    with pytest.raises(ValueError, match="addend_range < extrapolation_range"):
        make_pairs(10, 10, 0.2, 0)
    with pytest.raises(ValueError, match="holdout_fraction"):
        make_pairs(10, 20, 1.0, 0)


def test_image_task_uses_held_out_images_for_evaluation():
    pool = DigitPool.load(split_seed=0)
    train_images, _ = pool.labelled("train")
    test_images, test_labels = pool.labelled("test")
    assert len(train_images) + len(test_images) == 1797
    train_rows = {tuple(x.tolist()) for x in train_images}
    pairs = make_pairs(7, 10, 0.2, 0)
    task = AdditionTask("images", pairs, 20, digits=pool, eval_draws=3, split_seed=0)
    stimulus, target = task.eval_set("interpolation")
    assert stimulus.shape == (3 * len(pairs["interpolation"]), 2, 64)
    assert torch.equal(target, pairs["interpolation"].repeat_interleave(3, 0).sum(-1))
    assert not any(tuple(x.tolist()) in train_rows for x in stimulus.reshape(-1, 64)[:20])
    # each drawn image really is a picture of its digit
    first = pairs["interpolation"].repeat_interleave(3, 0)[:, 0]
    lookup = {tuple(x.tolist()): int(y) for x, y in zip(test_images, test_labels)}
    assert [lookup[tuple(x.tolist())] for x in stimulus[:, 0]] == first.tolist()
    x, y = task.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 2, 64) and y.shape == (16,)


def test_swap_in_train_marks_held_out_pairs_whose_commuted_pair_was_trained():
    pairs = make_pairs(6, 8, 0.3, split_seed=3)
    task = AdditionTask("onehot", pairs, 16)
    train = pairs["train"].tolist()
    expected = [[b, a] in train for a, b in pairs["interpolation"].tolist()]
    assert task.swap_in_train("interpolation").tolist() == expected
    assert any(expected) and not all(expected)  # both groups exist for this seed
    assert task.swap_in_train("train").tolist() == [[b, a] in train for a, b in train]


def test_task_rejects_bad_input():
    pairs = make_pairs(10, 20, 0.2, 0)
    with pytest.raises(ValueError, match="variant must be one of"):
        AdditionTask("mnist", pairs, 40)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot hold the largest sum 38"):
        AdditionTask("onehot", pairs, 30)
    with pytest.raises(ValueError, match="needs a DigitPool"):
        AdditionTask("images", make_pairs(7, 10, 0.2, 0), 20)
    with pytest.raises(ValueError, match="unknown split"):
        AdditionTask("onehot", pairs, 40).eval_set("test")
