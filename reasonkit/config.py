"""Config dataclasses -> command-line flags (and ``--config file.yaml``).

Every trainer or runner in reasonkit has a config dataclass whose fields carry their help text in
``field(metadata={"help": ...})`` and validate themselves in ``__post_init__``. :func:`parse_config`
builds an argparse parser from such a class, reads an optional YAML file given with ``--config``
and lets flags on the command line override it.

Why not transformers' ``HfArgumentParser``: it would import transformers (seconds) for commands that
never touch a language model (``reasonkit train-workspace``), and it does not merge YAML with flags.
This module handles the field types reasonkit's configs use: str, int, float, bool, Optional[...],
Literal[...] and tuple/list of str/int/float.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A config file or flag is wrong; the message names the field and the fix."""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in {"1", "true", "yes", "y", "on"}:
        return True
    if low in {"0", "false", "no", "n", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _field_kwargs(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    tp, optional = _unwrap_optional(tp)
    help_text = f.metadata.get("help", "")
    kwargs: dict[str, Any] = {"help": help_text, "dest": f.name, "default": argparse.SUPPRESS}
    origin = typing.get_origin(tp)
    if tp is bool:
        kwargs.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
    elif origin is typing.Literal:
        choices = typing.get_args(tp)
        kwargs.update(type=type(choices[0]), choices=choices)
    elif origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        kwargs.update(type=args[0] if args else str, nargs="*")
    elif tp in (int, float):
        kwargs.update(type=_number_parser(tp, optional))
    elif tp is str:
        kwargs.update(type=str)
    else:
        kwargs.update(type=str)
    return kwargs


_NUMBER_WORDS = {int: "a whole number", float: "a number"}


def _number_parser(kind: type, optional: bool) -> Any:
    """An argparse ``type`` whose error names what was expected ("argument --limit: expected a whole
    number, got 'abc'") instead of argparse's "invalid <lambda> value"."""

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in {"none", "null"}:
            return None
        try:
            return kind(text)
        except ValueError:
            extra = " (or none)" if optional else ""
            raise argparse.ArgumentTypeError(f"expected {_NUMBER_WORDS[kind]}{extra}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def _default_repr(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "required"


def build_parser(
    cls: type, prog: str | None = None, description: str | None = None, extra: type | None = None
) -> argparse.ArgumentParser:
    """An argparse parser with one ``--flag-name`` per dataclass field, plus ``--config FILE``;
    ``extra`` (another dataclass, e.g. a strategy's options) adds its fields as a group."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of field: value pairs; flags given on the command line override it",
    )
    _add_fields(parser, cls)
    if extra is not None:
        _add_fields(
            parser.add_argument_group((extra.__doc__ or extra.__name__).strip().splitlines()[0]), extra
        )
    return parser


def _add_fields(parser: Any, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    # the command's own fields first, shared ones inherited from a base (e.g. BackendOptions) after them
    own = vars(cls).get("__annotations__", {})
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)  # type: ignore[arg-type]
    for f in fields:
        if not f.init or f.metadata.get("cli") is False:
            continue
        kwargs = _field_kwargs(f, hints[f.name])
        kwargs["help"] = f"{kwargs['help']} (default: {_default_repr(f)})"
        flags = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            flags.append(f"--{f.name}")
        for alias in f.metadata.get("aliases", ()):
            flags.append(alias)
        parser.add_argument(*flags, **kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of field: value, got {type(data).__name__}")
    return data


def make_config(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Build ``cls`` from ``values``, naming unknown fields and the valid ones when something is off."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown field(s) {unknown} for {cls.__name__}; valid fields: {sorted(names)}"
        )
    hints = typing.get_type_hints(cls)
    coerced = {key: check_value(key, value, hints[key], source) for key, value in values.items()}
    try:
        return cls(**coerced)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def check_value(name: str, value: Any, annotation: Any, source: str = "config") -> Any:
    """``value`` as the field's annotation wants it, or a ConfigError naming the field, the value and the
    expected type. YAML gives ints where floats are declared (accepted) and lists for tuples (converted);
    nothing else is coerced: ``episodes: 2.5`` and ``progress: "maybe"`` are errors, not values."""
    ok, converted = _conform(value, annotation)
    if not ok:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(
            f"{source}: {name} ({flag}) must be {_describe(annotation)}, got {value!r} ({type(value).__name__})"
        )
    return converted


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin is typing.Union or origin is types.UnionType:
        for arg in args:
            ok, converted = _conform(value, arg)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is typing.Literal:  # type-exact: True is not the literal 1
        return any(value == a and type(value) is type(a) for a in args), value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        item = args[0] if args else Any
        items = [_conform(v, item) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        converted = [c for _, c in items]
        return True, tuple(converted) if origin is tuple else converted
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if tp is Path:
        return isinstance(value, (str, Path)), Path(value) if isinstance(value, (str, Path)) else value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_describe(args[0]) if args else 'values'}"
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        Path: "a path",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def parse_config(
    cls: type[C],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> C:
    """Parse ``argv`` into ``cls``: defaults, then ``--config`` YAML, then explicit flags."""
    config, _ = parse_config_with_options(cls, argv, prog=prog, description=description)
    return config


def parse_config_with_options(
    cls: type[C],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    selector: str | None = None,
    options_for: Callable[[str], type | None] | None = None,
    choices: Iterable[str] = (),
) -> tuple[C, Any]:
    """Parse ``argv`` into ``cls`` plus the options of what one of its fields selects.

    A command whose ``selector`` field (e.g. ``strategy``) names a component that declares its own
    options (a dataclass, from ``options_for(name)``) takes that component's flags too, listed in
    ``--help`` as their own group: ``reasonkit eval --strategy rlot --navigator FILE``. Fields of
    either class may come from the ``--config`` YAML. Returns ``(config, options or None)``. A flag
    that belongs to another of the ``choices`` is refused naming the choice it needs.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    extra: type | None = None
    if selector is not None and options_for is not None:
        pre = build_parser(cls, prog=prog)
        pre_ns, _ = _quiet_parse_known(pre, [a for a in args if a not in ("-h", "--help")])
        chosen = getattr(pre_ns, selector, None)
        if chosen is None and pre_ns.config:
            chosen = load_yaml(pre_ns.config).get(selector)
        if chosen is None:
            chosen = next(f.default for f in dataclasses.fields(cls) if f.name == selector)  # type: ignore[arg-type]
        extra = options_for(str(chosen))
    parser = build_parser(cls, prog=prog, description=description, extra=extra)
    _, unknown = _quiet_parse_known(build_parser(cls, prog=prog, extra=extra), args)
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("--")]
    for flag in flags:
        owner = next((c for c in choices if _has_flag(options_for and options_for(c), flag)), None)
        if owner is not None and selector is not None:
            parser.error(f"{flag} is an option of --{selector} {owner}; add --{selector} {owner}")
    ns = vars(parser.parse_args(args))
    config_path = ns.pop("config", None)
    values: dict[str, Any] = load_yaml(config_path) if config_path else {}
    values.update(ns)
    source = config_path or "command line"
    extra_names = {f.name for f in dataclasses.fields(extra)} if extra is not None else set()  # type: ignore[arg-type]
    options = (
        make_config(extra, {k: v for k, v in values.items() if k in extra_names}, source) if extra else None
    )
    config = make_config(cls, {k: v for k, v in values.items() if k not in extra_names}, source)
    return config, options


def _has_flag(cls: type | None, flag: str) -> bool:
    names = {f.name for f in dataclasses.fields(cls)} if cls is not None else set()  # type: ignore[arg-type]
    return flag.lstrip("-").replace("-", "_") in names


def _quiet_parse_known(
    parser: argparse.ArgumentParser, args: list[str]
) -> tuple[argparse.Namespace, list[str]]:
    """``parse_known_args`` that leaves errors to the full parse (which reports them with the full usage)."""

    def silent(message: str) -> NoReturn:
        raise SystemExit(2)

    parser.error = silent  # type: ignore[method-assign]
    try:
        return parser.parse_known_args(args)
    except SystemExit:
        return argparse.Namespace(config=None), args


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (tuples become lists, paths strings)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out
