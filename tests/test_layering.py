"""Imports point down the layers of docs/ARCHITECTURE.md, and a method never imports another method.

Every ``import`` / ``from … import`` in the package is read with ``ast`` (including those inside
functions: a lazy import is still a dependency) and each module is placed in a layer by the table
below. Registries that name modules as strings (the CLI's command table, ``STRATEGIES``,
``METHOD_SPECS``) are how upper layers are reached at run time, and are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"reasonkit": "reasonkit", "navigators": "reasonkit.navigators", "workspaces": "reasonkit.workspaces",
           "kernels": "reasonkit.kernels", "evals": "reasonkit.evals"}  # fmt: skip

#: (module prefix, layer): the longest matching prefix decides; higher layers may import lower ones.
LAYERS: list[tuple[str, int]] = [
    # 0 core: types, grading, data, prompt packs, the arith task, files, plots, config parsing
    ("reasonkit", 0),  # the package __init__ (lazy exports by string) and core modules
    ("reasonkit.tasks", 0),
    ("reasonkit.packs", 0),
    ("reasonkit.evals.loaders", 0),  # benchmark datasets: data that trainers read, below the methods
    ("reasonkit.evals.gpqa", 0),
    ("reasonkit.kernels", 1),
    ("reasonkit.models", 2),
    ("reasonkit.backends", 3),
    ("reasonkit.kit", 4),
    # 5 methods
    ("reasonkit.navigators", 5),
    ("reasonkit.workspaces", 5),
    ("reasonkit.cola", 5),
    ("reasonkit.tah", 5),
    ("reasonkit.hrpo", 5),
    ("reasonkit.controller", 6),
    ("reasonkit.strategies", 6),
    ("reasonkit.evals", 7),
    ("reasonkit.cli", 8),
    ("reasonkit.__main__", 8),
]
METHODS = (
    "reasonkit.navigators",
    "reasonkit.workspaces",
    "reasonkit.cola",
    "reasonkit.tah",
    "reasonkit.hrpo",
)
NAMES = {5: "methods", 0: "core", 1: "kernels", 2: "models", 3: "backends", 4: "strategy kit",
         6: "controller", 7: "evals", 8: "cli"}  # fmt: skip


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def method_of(module: str) -> str | None:
    return next((m for m in METHODS if module == m or module.startswith(m + ".")), None)


def package_modules() -> dict[str, Path]:
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported reasonkit module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            found.append((node.lineno, base))
    return sorted(
        {(line, name) for line, name in found if name == "reasonkit" or name.startswith("reasonkit.")}
    )


def violations(modules: dict[str, Path]) -> list[str]:
    bad = []
    for module, path in modules.items():
        if path.name == "_shadow.py" or (module.startswith("reasonkit.kernels") and "_shadow" in module):
            continue
        targets = set()
        for line, name in imports_of(module, path):
            target = name if name in modules else name.rsplit(".", 1)[0]  # "from pkg import name"
            if target in modules:
                targets.add((line, target))
        for line, target in sorted(targets):
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{shown}:{line} ({module} imports {target})"
            if layer_of(target) > layer_of(module):
                bad.append(f"{where}: {NAMES[layer_of(module)]} must not import {NAMES[layer_of(target)]}")
            own, other = method_of(module), method_of(target)
            if own and other and own != other:
                bad.append(f"{where}: a method never imports another method")
    return bad


def test_no_module_imports_a_layer_above_it():
    modules = package_modules()
    assert len(modules) > 100
    assert violations(modules) == []


def test_the_check_catches_an_upward_import(tmp_path):
    # a copy of one real module with one added line: a strategy-kit module importing the controller
    fake = tmp_path / "base.py"
    fake.write_text(
        (ROOT / "reasonkit/kit/base.py").read_text() + "\nfrom reasonkit.controller import Controller\n"
    )
    modules = package_modules()
    modules["reasonkit.kit.base"] = fake
    found = violations(modules)
    assert len(found) == 1 and "strategy kit must not import controller" in found[0]
    sibling = tmp_path / "env.py"
    sibling.write_text("from reasonkit.workspaces.router import GatedRouter\n")
    modules = package_modules()
    modules["reasonkit.navigators.env"] = sibling
    assert any("never imports another method" in v for v in violations(modules))


@pytest.mark.parametrize(
    ("module", "layer"),
    [("reasonkit.types", 0), ("reasonkit.evals.loaders", 0), ("reasonkit.kernels.gla.chunk", 1),
     ("reasonkit.models.whitebox.handle", 2), ("reasonkit.evals.runner", 7), ("reasonkit.cli", 8)],
)  # fmt: skip
def test_layer_table(module, layer):
    assert layer_of(module) == layer
