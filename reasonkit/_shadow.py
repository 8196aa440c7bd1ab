"""Keep the clone's top-level folders from shadowing installed packages of the same name.

The design puts four subpackages in top-level folders (``kernels/``, ``evals/``, ``navigators/``,
``workspaces/``) that install as ``reasonkit.kernels`` … (setup.py). Python puts the current
directory (``python -c``, ``python -m``, ``python -m pytest``) or a script's directory first on
``sys.path``, so from the clone root a bare ``import kernels`` would find the folder instead of the
Hugging Face ``kernels`` package that transformers imports (and ``import evals`` OpenAI's ``evals``).

Each folder's ``__init__`` therefore starts with::

    if __name__ != "reasonkit.kernels":
        from reasonkit._shadow import defer_to_installed
        defer_to_installed(__name__, __file__)

Under its installed name the folder is itself and nothing happens. Under its bare name it loads the
package of that name from the rest of ``sys.path`` into ``sys.modules`` in its place (the import
system returns whatever ``sys.modules`` holds once a module has run), or fails as a missing
package would. docs/ARCHITECTURE.md, "Layout decisions", has the reasoning.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def defer_to_installed(name: str, init_file: str) -> None:
    """Replace the module ``name`` (the folder of ``init_file``) by the installed package ``name``."""
    folder = os.path.dirname(os.path.abspath(init_file))
    root = os.path.realpath(os.path.dirname(folder))
    elsewhere = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != root]
    spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(
            f"No module named {name!r} (the folder {folder} is reasonkit's own code: "
            f"import it as reasonkit.{name})",
            name=name,
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
