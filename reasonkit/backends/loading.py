"""``load_backend(spec)``: one string names any backend reasonkit can run.

Accepted specs:
  ``builtin``                              the model shipped in reasonkit/models/zoo/builtin (HFBackend)
  ``builtin-v1``                           its first version, kept for comparisons (zoo/builtin_v1)
  ``openai:<base_url>#<model>``            an OpenAI-compatible server and the model it serves (canonical)
  ``openai:<base_url>/v1/<model>``         the same, model after ``/v1/`` (model names may contain ``/``)
  ``http(s)://host:port/v1[#<model>]``     a server URL (``openai:`` optional); without a model, the one
                                           model it serves (``GET /v1/models``) and its prompt pack
  ``hf:<id or path>`` / ``<id or path>``   an HF model id (``org/name``) or a local model directory

    >>> lm = load_backend("openai:http://localhost:8000/v1#Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
    >>> lm = load_backend("builtin", cache="runs/cache.sqlite")                         # doctest: +SKIP

Keyword arguments go to the backend's constructor (``device``, ``dtype``, ``batch_size``, ``threads`` for HF;
``api_key``, ``max_concurrency``, ``timeout`` … for servers); ``cache=True`` or ``cache=PATH`` wraps
the backend in a :class:`~reasonkit.backends.cached.CachedBackend` (in memory or on disk).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reasonkit.backends.base import BackendError, LanguageModel

#: What an HF model id looks like: "name" or "org/name" (letters, digits, "_", "-", ".").
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "models" / "zoo" / "builtin"
#: the first built-in model (docs/builtin-model.md, "Versions"); the methods' figures were measured on it
BUILTIN_V1_DIR = BUILTIN_DIR.parent / "builtin_v1"

#: the shipped built-in models by spec (a method's run trained on one of them loads it by digest)
BUILTIN_VERSIONS: dict[str, Path] = {"builtin": BUILTIN_DIR, "builtin-v1": BUILTIN_V1_DIR}

#: Specs of models that a method changes: ``NAME:ARGUMENTS`` -> the ``module:function`` that loads
#: them (called with the arguments and load_backend's keyword arguments; imported only when used).
#: A method package adds its line here (docs/ARCHITECTURE.md, "Adding a method").
METHOD_SPECS: dict[str, str] = {
    "layers": "reasonkit.backends.loading:layer_path_backend",
    "cola": "reasonkit.cola.backend:load",
    "tah": "reasonkit.tah.backend:load",
    "hrpo": "reasonkit.hrpo.backend:load",
}

SPEC_FORMS = (
    "'builtin' (or 'builtin-v1'); 'openai:http://HOST:PORT/v1#MODEL'; 'openai:http://HOST:PORT/v1/MODEL'; "
    "'http://HOST:PORT/v1' (the one model it serves) or 'http://HOST:PORT/v1#MODEL'; "
    "an HF id such as 'Qwen/Qwen2.5-0.5B-Instruct'; a local model directory (optionally prefixed 'hf:'); "
    "'layers:0,1,1,2-7@builtin' (a local model run through a layer path)"
)


class SpecError(BackendError, ValueError):
    """A backend spec that matches none of the accepted forms."""


@dataclass(frozen=True)
class BackendSpec:
    kind: Literal["builtin", "openai", "hf", "method"]
    target: str  # the base URL for servers, the id or path for HF models, a method's arguments
    model: str | None = None  # the served model name (servers; None: ask the server), or the method


def parse_spec(spec: str) -> BackendSpec:
    """Classify ``spec`` without touching the network or the disk beyond a path check."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty backend spec; accepted forms: {SPEC_FORMS}")
    spec = spec.strip()
    if spec == "builtin":
        return BackendSpec("builtin", str(BUILTIN_DIR))
    if spec == "builtin-v1":
        return BackendSpec("builtin", str(BUILTIN_V1_DIR), model="builtin-v1")
    if re.fullmatch(r"builtin[-_.]?v?\d*", spec) and not Path(spec).exists():
        raise SpecError(
            f"unknown built-in model {spec!r}: the built-in models are 'builtin' (v4) and 'builtin-v1'"
        )
    if spec.startswith("openai:"):
        rest = spec[len("openai:") :]
        if not rest.startswith(("http://", "https://")):
            raise SpecError(
                f"{spec!r}: after 'openai:' comes a URL starting with http:// or https://; accepted forms: {SPEC_FORMS}"
            )
        return _server_spec(rest, spec)
    if spec.startswith(("http://", "https://")):
        return _server_spec(spec, spec)
    method, sep, arguments = spec.partition(":")
    if sep and method in METHOD_SPECS:
        return BackendSpec("method", arguments, method)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec):
        raise SpecError(f"{spec!r}: unsupported URL scheme; accepted forms: {SPEC_FORMS}")
    target = spec[len("hf:") :] if spec.startswith("hf:") else spec
    if not target:
        raise SpecError(
            f"{spec!r}: 'hf:' needs an HF id or a directory after it; accepted forms: {SPEC_FORMS}"
        )
    if not (HF_ID.match(target) or looks_like_path(target)):
        raise SpecError(f"{spec!r} is not a backend spec; accepted forms: {SPEC_FORMS}")
    return BackendSpec("hf", target)


def looks_like_path(text: str) -> bool:
    """Whether ``text`` can only mean a filesystem path (never an HF id), or names an existing one."""
    return (
        text.startswith(("/", ".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or Path(text).expanduser().exists()
    )


def _server_spec(url: str, spec: str) -> BackendSpec:
    url, _, model = url.partition("#")
    if not model:
        head, sep, tail = url.partition("/v1/")
        if sep and tail.strip("/"):
            url, model = head + "/v1", tail.strip("/")
    host = url.split("://", 1)[1].split("/", 1)[0]
    if not host or " " in url:
        raise SpecError(f"{spec!r}: the server URL has no host; accepted forms: {SPEC_FORMS}")
    return BackendSpec("openai", url, model or None)


def spec_kind(spec: str) -> str:
    """ "builtin", "openai" or "hf" for a valid spec (raises :class:`SpecError` otherwise)."""
    return parse_spec(spec).kind


def load_backend(spec: str, *, cache: bool | str | Path | None = None, **kwargs: Any) -> LanguageModel:
    """The backend ``spec`` names (see the module docstring); ``cache`` wraps it in a CachedBackend."""
    parsed = parse_spec(spec)
    backend: LanguageModel
    if parsed.kind == "method":
        assert parsed.model is not None
        module_name, function = METHOD_SPECS[parsed.model].split(":")
        import importlib

        backend = getattr(importlib.import_module(module_name), function)(parsed.target, **kwargs)
    elif parsed.kind == "openai":
        backend = _server_backend(parsed, kwargs)
    elif parsed.kind == "builtin":
        where = Path(parsed.target)
        if not (where / "config.json").is_file():
            raise BackendError(
                f"the built-in model is not in this installation (expected at {where}); build it with "
                "`reasonkit train-lm`, or pass an HF id, a local model directory or a server URL instead"
            )
        from reasonkit.backends.hf import HFBackend

        backend = HFBackend(str(where), name=kwargs.pop("name", parsed.model or "builtin"), **kwargs)
    else:
        from reasonkit.backends.hf import HFBackend

        backend = HFBackend(parsed.target, **kwargs)
    if cache:
        from reasonkit.backends.cached import CachedBackend

        backend = CachedBackend(backend, path=None if cache is True else cache)
    return backend


def _server_backend(parsed: BackendSpec, kwargs: dict[str, Any]) -> LanguageModel:
    from reasonkit.backends.openai import OpenAIBackend

    if parsed.model is not None:
        return OpenAIBackend(parsed.target, parsed.model, **kwargs)
    probe = OpenAIBackend(parsed.target, "", **kwargs)
    try:
        models = probe.list_models()
    except BackendError as exc:
        raise BackendError(
            f"{exc} — a URL without a model name asks the server which model it serves (GET "
            f"{probe.base_url}/models); if it cannot say, name the model in the spec: "
            f"'openai:{parsed.target}#MODEL'"
        ) from None
    finally:
        probe.close()
    if len(models) != 1:
        names = [m["id"] for m in models]
        raise SpecError(
            f"{parsed.target} serves {len(models)} models {names}; name one: "
            f"'openai:{parsed.target}#{names[0] if names else 'MODEL'}'"
        )
    info = models[0]
    card: dict[str, Any] = info["reasonkit"] if isinstance(info.get("reasonkit"), dict) else {}
    pack, kinds = card.get("prompt_pack"), card.get("kinds")
    if pack and "prompt_pack" not in kwargs:
        kwargs = {**kwargs, "prompt_pack": str(pack)}
    if isinstance(kinds, list) and kinds and "kinds" not in kwargs:
        kwargs = {**kwargs, "kinds": [str(k) for k in kinds]}
    return OpenAIBackend(parsed.target, str(info["id"]), **kwargs)


def parse_layer_path(text: str) -> tuple[int, ...]:
    """``"0,1,1,3-5"`` -> (0, 1, 1, 3, 4, 5): layer indices in order, ``a-b`` for a run of layers."""
    path: list[int] = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise SpecError(
                f"layer path {text!r}: {part!r} is not a layer index or a run 'a-b'; write e.g. 0,1,1,2-7"
            ) from None
        if last < first:
            raise SpecError(f"layer path {text!r}: the run {part!r} goes backwards; list the layers instead")
        path.extend(range(first, last + 1))
    return tuple(path)


def layer_path_backend(arguments: str, **kwargs: Any) -> LanguageModel:
    """``layers:PATH@MODEL``: the local model ``MODEL`` (any spec of a local model) with every forward
    running the layer path ``PATH`` (skips and repeats; see :func:`parse_layer_path`)."""
    path_text, at, base = arguments.partition("@")
    if not at or not base.strip():
        raise SpecError(f"'layers:{arguments}': give the path and the model, e.g. 'layers:0,1,1,2-7@builtin'")
    if parse_spec(base).kind not in ("builtin", "hf"):
        raise SpecError(
            f"'layers:{arguments}': a layer path runs inside a local model, and {base!r} is not one; "
            "use 'builtin', an HF id or a local model directory"
        )
    return load_backend(base, path=parse_layer_path(path_text), **kwargs)


def load_base(spec: str, digest: object, owner: str, **kwargs: Any) -> LanguageModel:
    """The base model a method's saved run (a LoRA, a path predictor) was trained on.

    ``spec`` is the base the run names and ``digest`` the weights digest it recorded at training
    (``HFBackend.weights_digest``; empty for runs saved before digests were recorded, which load
    ``spec`` as named, with a warning saying which version ``builtin`` is now). ``builtin`` names
    whichever built-in version is shipped, so a run trained on an earlier one names a model that has
    changed since: when ``digest`` is that of another shipped version, that version is loaded (with
    a warning); when the loaded weights still differ, the run would apply its weights to a model
    they were not trained for, so it fails naming the fix. ``owner`` is the card that names the base
    (for the messages)."""
    from reasonkit.backends.hf_load import fingerprint, read_model_card

    recorded = str(digest) if digest else None
    if recorded is None:
        if spec == "builtin":
            version = read_model_card(BUILTIN_DIR).get("version", "the newest version")
            warnings.warn(
                f"{owner} does not record which built-in version it was trained on, and 'builtin' is "
                f"{version} now; a run made before 2026-12-06 was trained on v1: set its base model to "
                "'builtin-v1' in that file",
                stacklevel=2,
            )
        return load_backend(spec, **kwargs)
    shipped = BUILTIN_VERSIONS.get(spec)
    if shipped is not None and fingerprint(shipped) != recorded:  # digests of files on disk: no load
        for other, directory in BUILTIN_VERSIONS.items():
            if other != spec and (directory / "config.json").is_file() and fingerprint(directory) == recorded:
                warnings.warn(
                    f"{owner} was trained on the built-in model now shipped as {other!r} ({spec!r} is "
                    f"another version since); loading {other!r}",
                    stacklevel=2,
                )
                spec = other
                break
    base = load_backend(spec, **kwargs)
    now = getattr(base, "weights_digest", None)
    if now is not None and now != recorded:
        raise SpecError(
            f"{owner} was trained on {spec!r} with weights {recorded}, but {spec!r} now has weights {now}: "
            "its weights would run on a model they were not trained for. Point its base model at the "
            "directory of the weights it was trained on, or train it again on this model"
        )
    return base
