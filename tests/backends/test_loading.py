"""load_backend: every accepted spec form, the built-in model, caching, and clear errors for the rest."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
from fault_server import Action, FaultServer

from reasonkit.backends import loading
from reasonkit.backends.base import BackendError
from reasonkit.backends.cached import CachedBackend
from reasonkit.backends.hf import HFBackend
from reasonkit.backends.loading import BackendSpec, SpecError, load_backend, parse_spec
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.types import SamplingParams


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("builtin", BackendSpec("builtin", str(loading.BUILTIN_DIR))),
        ("builtin-v1", BackendSpec("builtin", str(loading.BUILTIN_V1_DIR), "builtin-v1")),
        (
            "openai:http://h:8000/v1#Qwen/Qwen2.5-7B-Instruct",
            BackendSpec("openai", "http://h:8000/v1", "Qwen/Qwen2.5-7B-Instruct"),
        ),
        (
            "openai:https://api.x.com/v1/gpt-4o-mini",
            BackendSpec("openai", "https://api.x.com/v1", "gpt-4o-mini"),
        ),
        (
            "openai:http://h:8000/v1/meta-llama/Llama-3.1-8B",
            BackendSpec("openai", "http://h:8000/v1", "meta-llama/Llama-3.1-8B"),
        ),
        ("openai:http://h:8000/v1", BackendSpec("openai", "http://h:8000/v1", None)),
        ("http://127.0.0.1:8000/v1", BackendSpec("openai", "http://127.0.0.1:8000/v1", None)),
        ("http://127.0.0.1:8000/v1/", BackendSpec("openai", "http://127.0.0.1:8000/v1/", None)),
        ("http://h:8000/v1#m:latest", BackendSpec("openai", "http://h:8000/v1", "m:latest")),
        ("Qwen/Qwen2.5-0.5B-Instruct", BackendSpec("hf", "Qwen/Qwen2.5-0.5B-Instruct")),
        ("gpt2", BackendSpec("hf", "gpt2")),
        ("hf:Qwen/Qwen2.5-0.5B", BackendSpec("hf", "Qwen/Qwen2.5-0.5B")),
        ("./models/mine", BackendSpec("hf", "./models/mine")),
        ("/abs/path/to/model", BackendSpec("hf", "/abs/path/to/model")),
    ],
)
def test_parse_spec_forms(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "openai:",
        "openai:localhost:8000/v1#m",
        "ftp://h/v1",
        "hf:",
        "my model",
        "a:b",
        "http:///v1#m",
    ],
)
def test_malformed_specs_list_the_accepted_forms(spec):
    with pytest.raises(SpecError, match=r"accepted forms: 'builtin'.*openai:http://HOST:PORT/v1#MODEL"):
        parse_spec(spec)
    with pytest.raises(BackendError):  # SpecError is a BackendError (and a ValueError) for callers
        load_backend(spec)


def test_builtin_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "BUILTIN_DIR", tmp_path / "zoo" / "builtin")
    with pytest.raises(BackendError, match=r"built-in model is not in this installation.*reasonkit train-lm"):
        load_backend("builtin")


def test_builtin_loads_the_shipped_directory_with_its_prompt_pack(monkeypatch, tmp_path, model_dir):
    zoo = tmp_path / "zoo" / "builtin"
    shutil.copytree(model_dir, zoo)
    (zoo / "reasonkit.json").write_text(json.dumps({"prompt_pack": "compact"}))
    monkeypatch.setattr(loading, "BUILTIN_DIR", zoo)
    lm = load_backend("builtin", batch_size=2)
    assert (
        isinstance(lm, HFBackend)
        and lm.name == "builtin"
        and lm.prompt_pack == "compact"
        and lm.batch_size == 2
    )


@pytest.mark.parametrize("spec", ["builtin-v3", "builtin_v1", "builtinv4"])
def test_an_unknown_builtin_version_names_the_known_ones(spec):
    with pytest.raises(SpecError, match=r"unknown built-in model.*'builtin' \(v4\) and 'builtin-v1'"):
        parse_spec(spec)


def test_both_shipped_versions_load_under_their_names():
    from safetensors.torch import load_file

    new, v1 = load_backend("builtin"), load_backend("builtin-v1")
    assert (new.name, v1.name) == ("builtin", "builtin-v1") and (v1.prompt_pack, new.prompt_pack) == (
        "compact",
        "compact2",
    )
    a = load_file(str(loading.BUILTIN_DIR / "model.safetensors"))
    b = load_file(str(loading.BUILTIN_V1_DIR / "model.safetensors"))
    assert a.keys() == b.keys() and any(not (a[k] == b[k]).all() for k in a)  # two different models
    card = json.loads((loading.BUILTIN_DIR / "reasonkit.json").read_text())
    assert card["train_config"]["finetune_from"]  # v4 continues from a checkpoint (docs/builtin-model.md)


def test_local_path_and_cache_wrapping(model_dir, tmp_path):
    lm = load_backend(str(model_dir))
    assert isinstance(lm, HFBackend) and lm.name == str(model_dir)
    cached = load_backend(f"hf:{model_dir}", cache=True)
    assert isinstance(cached, CachedBackend) and cached.path is None
    on_disk = load_backend(str(model_dir), cache=tmp_path / "c.sqlite")
    assert isinstance(on_disk, CachedBackend) and (tmp_path / "c.sqlite").is_file()


def test_missing_local_path_names_it():
    with pytest.raises(BackendError, match=r"/no/such/model.*no such directory") as err:
        load_backend("/no/such/model")
    assert "download" not in str(err.value)


def test_server_specs_build_openai_backends_without_network():
    lm = load_backend("openai:http://127.0.0.1:9/v1#served", timeout=3, max_concurrency=2)
    assert isinstance(lm, OpenAIBackend)
    assert (lm.base_url, lm.model, lm.timeout, lm.max_concurrency) == (
        "http://127.0.0.1:9/v1",
        "served",
        3,
        2,
    )


def _models(*ids: str, pack: str | None = None) -> Action:
    entries = [
        {"id": i, "object": "model", **({"reasonkit": {"prompt_pack": pack}} if pack else {})} for i in ids
    ]
    return Action(body=json.dumps({"object": "list", "data": entries}).encode())


def test_plain_url_takes_the_one_served_model_and_its_prompt_pack():
    with FaultServer([_models("tiny-builtin", pack="compact")]) as srv:
        lm = load_backend(srv.url, max_retries=0)
    assert isinstance(lm, OpenAIBackend) and lm.model == "tiny-builtin" and lm.prompt_pack == "compact"
    assert srv.requests[0]["path"] == "/v1/models"


def test_plain_url_with_several_models_asks_to_name_one():
    with (
        FaultServer([_models("a", "b")]) as srv,
        pytest.raises(SpecError, match=r"serves 2 models \['a', 'b'\].*#a"),
    ):
        load_backend(srv.url, max_retries=0)


def test_plain_url_that_is_not_a_server_is_a_clear_error():
    with (
        FaultServer([Action(body=b'{"hello": "world"}')]) as srv,
        pytest.raises(BackendError, match="no list of models"),
    ):
        load_backend(srv.url, max_retries=0)


def test_plain_url_of_a_server_without_a_models_route_is_told_to_name_the_model():
    # e.g. a proxy that only forwards /v1/completions: the spec must carry the model name instead
    with FaultServer([Action(404, b'{"error": {"message": "no route"}}')]) as srv:
        with pytest.raises(BackendError, match=r"HTTP 404.*name the model in the spec") as err:
            load_backend(srv.url, max_retries=0)
        assert f"'openai:{srv.url}#MODEL'" in str(err.value)


def test_layer_path_specs(model_dir):
    from reasonkit.backends.loading import parse_layer_path

    assert parse_layer_path("0,1,1,3-5") == (0, 1, 1, 3, 4, 5) and parse_layer_path("") == ()
    lm = load_backend(f"layers:0,0,1@{model_dir}")
    assert lm.path == (0, 0, 1) and lm.name.endswith("@layers=0,0,1")
    assert lm.generate(["hello"], SamplingParams(max_new_tokens=3))[0][0].tokens_out >= 1


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("layers:0,1", "give the path and the model"),
        ("layers:0,x@builtin", "'x' is not a layer index"),
        ("layers:3-1@builtin", "goes backwards"),
        ("layers:0@http://127.0.0.1:9/v1#m", "is not one; use 'builtin'"),
        ("layers:0,9@builtin", r"layer indices in \[0, 8\)"),
    ],
)
def test_bad_layer_path_specs_name_the_fix(spec, needle):
    with pytest.raises(ValueError, match=needle):
        load_backend(spec)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda c: c.update(hidden_size="abc"), "hidden_size must be a positive whole number, got 'abc'"),
        (lambda c: c.update(hidden_size=256), "num_heads=6 does not divide hidden_size=256"),
        (  # two more layers than the weights hold: an error, not two random layers
            lambda c: c.update(num_hidden_layers=10, mixer_types=[*c["mixer_types"], "gla", "attn"]),
            "weights do not match its config.json (missing keys: model.layers.8.",
        ),
        (None, "SafetensorError"),  # a truncated weight file
    ],
)
def test_a_broken_model_directory_is_one_clear_error(tmp_path, edit, needle):
    broken = tmp_path / "model"
    shutil.copytree(loading.BUILTIN_DIR, broken)
    if edit is None:
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    else:
        config = json.loads((broken / "config.json").read_text())
        edit(config)
        (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError) as err:
        load_backend(str(broken))
    message = str(err.value)
    assert needle in message and str(broken) in message and "download" not in message


def test_a_run_trained_on_another_builtin_version_gets_that_version_or_a_clear_error():
    from reasonkit.backends.hf_load import fingerprint
    from reasonkit.backends.loading import load_base

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recorded digest matches: nothing to say
        assert load_base("builtin", fingerprint(loading.BUILTIN_DIR), "card.json").name == "builtin"
    with pytest.warns(
        UserWarning, match=r"card.json was trained on the built-in model now shipped as 'builtin-v1'"
    ):
        older = load_base("builtin", fingerprint(loading.BUILTIN_V1_DIR), "card.json")
    assert older.name == "builtin-v1" and older.weights_digest == fingerprint(loading.BUILTIN_V1_DIR)
    with pytest.raises(
        SpecError, match=r"card.json was trained on 'builtin' with weights 0+1, but 'builtin' now"
    ):
        load_base("builtin", "0" * 15 + "1", "card.json")
    with pytest.warns(
        UserWarning, match=r"does not record which built-in version.*'builtin-v1' in that file"
    ):
        assert load_base("builtin", None, "card.json").name == "builtin"
