"""Every command's config rejects wrong-typed values with one message naming the field — never a traceback.

The configs are found, not listed: every dataclass in the package whose fields all carry help text
(what makes it a command's config). Values come from ``--config`` YAML files in practice, which is
where wrong types enter (flags are typed by argparse).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reasonkit
from reasonkit.config import ConfigError, _conform, make_config


def command_configs() -> list[type]:
    found: dict[str, type] = {}
    packages = [("reasonkit", reasonkit.__path__)] + [
        (name, importlib.import_module(name).__path__)  # the mapped top-level folders
        for name in ("reasonkit.navigators", "reasonkit.workspaces", "reasonkit.evals")
    ]
    infos = [info for name, path in packages for info in pkgutil.walk_packages(path, f"{name}.")]
    for info in infos:
        if info.name.startswith(("reasonkit.kernels", "reasonkit.models.zoo")) or info.name.endswith(
            "__main__"
        ):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == info.name
                and dataclasses.fields(value)
                and all("help" in f.metadata for f in dataclasses.fields(value))
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


CONFIGS = command_configs()
VALUES = st.one_of(
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def test_the_configs_are_found():
    names = {c.__name__ for c in CONFIGS}
    assert {"EvalConfig", "SolveConfig", "ServeConfig", "TrainNavigatorConfig", "TrainLMConfig",
            "WorkspaceConfig"} <= names  # fmt: skip


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_typed_values_end_in_one_clear_error(cls, data):
    hints = typing.get_type_hints(cls)
    field = data.draw(st.sampled_from([f for f in dataclasses.fields(cls) if f.init]))
    value = data.draw(VALUES)
    wrong = not _conform(value, hints[field.name])[0]
    try:
        make_config(cls, {field.name: value}, source="run.yaml")
    except ConfigError as exc:  # the only way out: a ValueError whose message is for the user
        message = str(exc)
        assert message.startswith("run.yaml: ") and "Traceback" not in message
        if wrong:
            assert field.name in message and repr(value) in message
    else:
        assert not wrong, f"{cls.__name__}.{field.name} accepted {value!r}"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"temperature": "hot"}, "temperature (--temperature) must be a number or null, got 'hot'"),
        ({"out": 5}, "out (--out) must be a string, got 5"),
        ({"limit": "abc"}, "limit (--limit) must be a whole number or null, got 'abc'"),
        ({"progress": "maybe"}, "progress (--progress) must be true or false, got 'maybe'"),
        ({"field_map": 5}, "field_map (--field-map) must be a list of a string, got 5"),
    ],
)
def test_the_values_users_got_wrong(values, needle):
    from reasonkit.evals.runner import EvalConfig

    with pytest.raises(ConfigError) as err:
        make_config(EvalConfig, {"bench": "arith", "out": "x", **values}, source="run.yaml")
    assert needle in str(err.value)


def test_a_fractional_episode_count_is_refused():
    from reasonkit.navigators.train import TrainNavigatorConfig

    with pytest.raises(ConfigError, match=r"episodes \(--episodes\) must be a whole number, got 2.5"):
        make_config(TrainNavigatorConfig, {"episodes": 2.5})
