"""Code run from the clone root: the top-level folders must not shadow installed packages.

Python puts the current directory first on ``sys.path`` for ``python -c``, ``python -m`` and
``python -m pytest``; the folders ``kernels/``, ``evals/``, ``navigators/`` and ``workspaces/`` are
reasonkit's subpackages, and transformers imports the Hugging Face package ``kernels`` itself. Each
test starts a real interpreter in the repository root, as a user would.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_in_root(code: str, *, extra_path: Path | None = None, args: tuple[str, ...] = ()) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    command = [sys.executable, *args] if args else [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not _installed("kernels"),
    reason="the Hugging Face 'kernels' package (a transformers dependency) is not installed",
)
def test_transformers_and_builtin_model_import_from_the_clone_root() -> None:
    # Before the fix: ImportError: cannot import name 'CUDAProperties' from 'kernels' (<root>/kernels/__init__.py)
    out = run_in_root(
        "import kernels, transformers.activations, reasonkit.models, reasonkit.kernels;"
        "print(kernels.__file__); print(reasonkit.kernels.__file__);"
        "print(hasattr(kernels, 'CUDAProperties'))"
    )
    installed, ours, has_attr = out.split()
    assert "site-packages" in installed and not installed.startswith(str(ROOT / "kernels"))
    assert Path(ours) == ROOT / "kernels" / "__init__.py"
    assert has_attr == "True"


def test_builtin_backend_loads_from_the_clone_root() -> None:
    out = run_in_root("import reasonkit; print(reasonkit.load_backend('builtin').name)")
    assert out.strip() == "builtin"


def test_a_bare_name_resolves_to_the_installed_package_of_that_name(tmp_path: Path) -> None:
    # A package called 'navigators' installed elsewhere on sys.path wins over the folder in the root.
    (tmp_path / "navigators").mkdir()
    (tmp_path / "navigators" / "__init__.py").write_text("ORIGIN = 'installed'\n")
    (tmp_path / "navigators" / "sub.py").write_text("VALUE = 7\n")
    out = run_in_root(
        "import navigators, navigators.sub, reasonkit.navigators as ours;"
        "print(navigators.ORIGIN, navigators.sub.VALUE, ours.__name__)",
        extra_path=tmp_path,
    )
    assert out.split() == ["installed", "7", "reasonkit.navigators"]


def test_a_bare_name_without_an_installed_package_fails_like_a_missing_package() -> None:
    code = (
        "try:\n    import workspaces\nexcept ModuleNotFoundError as e:\n    print(e.name, '|', e)\n"
        "import sys; print('workspaces' in sys.modules)"
    )
    out = run_in_root(code).splitlines()
    assert out[0].startswith("workspaces |") and "reasonkit.workspaces" in out[0]
    assert out[1] == "False"


def test_module_commands_run_from_the_clone_root() -> None:
    out = run_in_root("", args=("-m", "reasonkit.evals.compare_navigator", "--help"))
    assert "usage" in out.lower()


def test_test_module_basenames_are_unique():
    """pytest imports test files by basename (``pythonpath = ["tests"]``, no packages): two
    ``test_x.py`` in different folders stop collection of the whole suite ("import file mismatch")."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "conftest.py" or path.name == "__init__.py":
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, "rename one of each pair: " + "; ".join(clashes)
