"""Package discovery for reasonkit.

The design puts four subpackages in top-level folders (navigators/, workspaces/, kernels/, evals/).
They install as reasonkit.navigators, reasonkit.workspaces, reasonkit.kernels and reasonkit.evals;
bare `import kernels` or `import evals` must not resolve to them (other PyPI packages own those
names, and transformers imports `kernels` itself). setuptools' `find` cannot rename folders, so the
package list and the folder mapping are computed here; everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

MAPPED_FOLDERS = {
    "navigators": "reasonkit.navigators",
    "workspaces": "reasonkit.workspaces",
    "kernels": "reasonkit.kernels",
    "evals": "reasonkit.evals",
}

packages = find_packages(include=["reasonkit", "reasonkit.*"])
package_dir = {"reasonkit": "reasonkit"}
for folder, name in MAPPED_FOLDERS.items():
    package_dir[name] = folder
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
