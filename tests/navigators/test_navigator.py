"""Navigator files: save/load round trip, metadata, presets, and every way a file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reasonkit.navigators.navigator import Navigator, NavigatorFileError
from reasonkit.navigators.network import DuelingQNet
from reasonkit.navigators.presets import PRESETS, preset_path

META = {"model": "builtin", "task": "arith", "reward": "self-eval", "episodes": "300", "max_depth": "5"}


def _navigator(seed: int = 0) -> Navigator:
    torch.manual_seed(seed)
    return Navigator(DuelingQNet(), dict(META))


def test_save_load_round_trip(tmp_path):
    nav = _navigator()
    path = nav.save(tmp_path / "nav.safetensors")
    loaded = Navigator.load(path)
    states = np.random.default_rng(0).integers(0, 4, size=(32, 7))
    np.testing.assert_array_equal(nav.q_values(states), loaded.q_values(states))
    np.testing.assert_array_equal(nav.act(states), loaded.act(states))
    assert {k: loaded.metadata[k] for k in META} == META
    assert loaded.metadata["format"] == "reasonkit-navigator" and loaded.metadata["date"]
    assert loaded.n_parameters == 2566 and loaded.max_depth == 5
    assert path.stat().st_size < 20_000  # one small file


def test_act_accepts_one_state_or_a_batch():
    nav = _navigator()
    one = nav.act(np.array([3, 3, 3, 1, 2, 3, 3]))
    assert one.shape == (1,) and 0 <= one[0] < 5
    assert nav.act(np.zeros((4, 7))).shape == (4,)


def test_save_needs_provenance(tmp_path):
    with pytest.raises(ValueError, match="metadata"):
        Navigator(DuelingQNet(), {"model": "x"}).save(tmp_path / "n.safetensors")


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(NavigatorFileError, match=r"no navigator file at .*reasonkit train-navigator"):
        Navigator.load(tmp_path / "nope.safetensors")


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "nav.safetensors"
    path.write_text("this is not a navigator")
    with pytest.raises(NavigatorFileError, match="is not a navigator file"):
        Navigator.load(path)


def test_a_pickle_is_refused_not_executed(tmp_path):
    path = tmp_path / "nav.pt"
    torch.save(DuelingQNet().state_dict(), path)
    with pytest.raises(NavigatorFileError, match="is not a navigator file"):
        Navigator.load(path)


def test_safetensors_without_navigator_metadata(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file(DuelingQNet().state_dict(), path)
    with pytest.raises(NavigatorFileError, match="not a reasonkit navigator"):
        Navigator.load(path)


def test_wrong_weights_and_version(tmp_path):
    meta = {"format": "reasonkit-navigator", "version": "1", **META}
    path = tmp_path / "bad.safetensors"
    save_file({"trunk.0.weight": torch.zeros(3, 3)}, path, metadata=meta)
    with pytest.raises(NavigatorFileError, match="do not fit the dueling network"):
        Navigator.load(path)
    save_file(DuelingQNet().state_dict(), path, metadata={**meta, "version": "99"})
    with pytest.raises(NavigatorFileError, match="version '99'"):
        Navigator.load(path)


def test_presets_load_by_name():
    if not PRESETS:
        pytest.skip("no navigator preset is shipped in this checkout yet")
    for name in PRESETS:
        nav = Navigator.load(name)
        assert nav.n_parameters == 2566
        assert nav.metadata["model"] and nav.metadata["task"] and int(nav.metadata["episodes"]) > 0
        assert preset_path(name).is_file()
    with pytest.raises(ValueError, match="unknown navigator preset"):
        preset_path("no-such-preset")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("hidden", "100000", "hidden='100000' is not a whole number from 1 to 4096"),  # 40 TB before
        ("hidden", "abc", "hidden='abc' is not a whole number"),
        ("obs_dim", "-7", "obs_dim='-7'"),
        ("n_actions", "0", "n_actions='0'"),
    ],
)
def test_metadata_sizes_are_checked_before_anything_is_built(tmp_path, field, value, needle):
    path = tmp_path / "edited.safetensors"
    meta = {"format": "reasonkit-navigator", "version": "1", **META, field: value}
    save_file(DuelingQNet().state_dict(), path, metadata=meta)
    with pytest.raises(NavigatorFileError, match=needle) as err:
        Navigator.load(path)
    assert str(path) in str(err.value)


def test_non_finite_weights_are_refused(tmp_path):
    nav = _navigator()
    path = nav.save(tmp_path / "nav.safetensors")
    weights = {k: v.clone() for k, v in nav.net.state_dict().items()}
    name = sorted(weights)[0]
    weights[name].view(-1)[3] = float("nan")
    save_file(weights, path, metadata=nav.metadata)
    with pytest.raises(NavigatorFileError, match=rf"{path}: weights {name} hold NaN or infinite"):
        Navigator.load(path)
