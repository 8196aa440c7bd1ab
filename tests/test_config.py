from dataclasses import dataclass, field
from typing import Literal

import pytest

from reasonkit.config import ConfigError, config_to_dict, parse_config


@dataclass
class DemoConfig:
    model: str = field(default="builtin", metadata={"help": "model spec"})
    episodes: int = field(default=3000, metadata={"help": "training episodes"})
    lr: float = field(default=0.01, metadata={"help": "learning rate"})
    hard_only: bool = field(default=False, metadata={"help": "train on hard problems only"})
    reward: Literal["prm", "outcome", "self-eval"] = field(default="prm", metadata={"help": "reward"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds"})
    limit: int | None = field(default=None, metadata={"help": "max problems"})

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")


def test_defaults_flags_and_yaml_override_order(tmp_path):
    assert parse_config(DemoConfig, []) == DemoConfig()
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("episodes: 10\nlr: 0.5\nseeds: [4, 5]\n")
    cfg = parse_config(
        DemoConfig, ["--config", str(yaml_file), "--lr", "0.1", "--hard-only", "--reward", "outcome"]
    )
    assert cfg.episodes == 10 and cfg.lr == 0.1 and cfg.hard_only is True and cfg.reward == "outcome"
    assert cfg.seeds == (4, 5)
    assert parse_config(DemoConfig, ["--hard_only", "false", "--limit", "7"]).limit == 7
    assert config_to_dict(cfg)["seeds"] == [4, 5]


def test_bad_values_fail_clearly(tmp_path):
    with pytest.raises(SystemExit):
        parse_config(DemoConfig, ["--reward", "vibes"])
    with pytest.raises(ConfigError, match="episodes must be >= 1"):
        parse_config(DemoConfig, ["--episodes", "0"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("epsiodes: 3\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['epsiodes'\]"):
        parse_config(DemoConfig, ["--config", str(bad)])
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config(DemoConfig, ["--config", str(tmp_path / "missing.yaml")])
