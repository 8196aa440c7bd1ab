# Two entry points that do all their own set-up on a fresh machine with only Python:
#   make demo   train an RL-of-Thoughts navigator on the built-in model (reasonkit train-navigator)
#   make test   run the test suite
# Both install into .venv from the lock, constraints.txt: the exact versions the suite was last run with.
#   make test-latest   the suite in .venv-latest, with the newest releases pyproject.toml allows
#   make lock          make test-latest, then write its versions into constraints.txt
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := constraints.txt
LATEST_VENV ?= .venv-latest
LATEST_BIN := $(LATEST_VENV)/bin

# torch is pinned by hand and installed on its own, first and without its dependencies (the next
# step resolves those against the lock). TORCH_INDEX is the index it comes from: by default
# PyTorch's CPU wheel index (about 200 MB, runs everywhere); `make ... TORCH_INDEX=` takes it from
# PyPI instead, which on Linux is the CUDA build (several GB of nvidia-* packages, for GPU machines).
# TRITON_VERSION is the triton that PyPI's torch 2.13.0 Linux wheels require exactly (==): pinning
# the same one keeps the lock installable next to the CUDA build. Bump the two together.
TORCH_VERSION := 2.13.0
TRITON_VERSION := 3.7.1
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_FROM = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
LOCK_STRICT ?=

.PHONY: setup demo test test-all test-latest lock lint bench clean

$(STAMP): pyproject.toml setup.py $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(LOCK) --upgrade pip
	$(BIN)/python -m pip install -q --no-deps torch==$(TORCH_VERSION) $(TORCH_FROM)
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev]'
	$(BIN)/python -c "$$LOCK_CHECK_PY" $(LOCK) $(LOCK_STRICT)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/reasonkit train-navigator

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# Dependency drift shows up here first: a fresh venv with the newest release of everything
# pyproject.toml allows, except torch and triton, which stay at TORCH_VERSION / TRITON_VERSION (the
# newest torch on PyPI is a multi-GB CUDA build and would not be the version the lock is made for).
# Rebuilt from scratch on every run, so it always sees today's releases. The `*` .gitignore keeps
# the venv out of git and ruff (Python 3.13's venv writes the same file).
test-latest:
	rm -rf $(LATEST_VENV)
	$(PY) -m venv $(LATEST_VENV)
	echo '*' > $(LATEST_VENV)/.gitignore
	$(LATEST_BIN)/python -m pip install -q --upgrade pip setuptools
	$(LATEST_BIN)/python -m pip install -q --no-deps torch==$(TORCH_VERSION) $(TORCH_FROM)
	$(LATEST_BIN)/python -m pip install -q -e '.[dev]' torch==$(TORCH_VERSION) triton==$(TRITON_VERSION)
	# What differs from the lock (report only):
	-$(LATEST_BIN)/python -c "$$LOCK_CHECK_PY" $(LOCK)
	$(LATEST_BIN)/python -m pytest -q

# The lock is written from the venv that make test-latest just passed the suite in, so it only moves
# to versions that were tested. Then run `make test lint`: it reinstalls .venv from the new lock and
# runs what CI runs, lint included (new ruff and mypy releases bring new checks).
lock: test-latest
	$(LATEST_BIN)/python -c "$$LOCK_WRITE_PY" > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check reasonkit navigators workspaces kernels evals tests
	$(BIN)/mypy reasonkit navigators workspaces kernels evals

bench: $(STAMP)
	$(BIN)/python -m reasonkit.kernels.bench

clean:
	rm -rf $(VENV) $(LATEST_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Writes the lock from the running venv: every installed distribution as name==version, except
# reasonkit itself and the nvidia-*/cuda-* packages of the CUDA build (torch pins those itself);
# local labels such as +cpu are dropped so the same line matches the CPU and the CUDA wheel. A
# release whose Requires-Python leaves out a Python that pyproject.toml allows gets that
# Requires-Python as a marker: the pin applies where it can install, and pip chooses elsewhere.
define LOCK_WRITE_PY
import importlib.metadata as md, platform, re
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
low = re.search(r'requires-python\s*=\s*">=\s*3\.(\d+)', open("pyproject.toml").read()).group(1)
pythons = [f"3.{m}" for m in range(int(low), 16)]
pins = {}
for dist in md.distributions():
    key = canonicalize_name(dist.metadata["Name"])
    if key == "reasonkit" or key.startswith(("nvidia-", "cuda-")):
        continue
    line = key + "==" + dist.version.split("+")[0]
    needs = SpecifierSet(dist.metadata.get("Requires-Python") or "")
    if not all(needs.contains(p) for p in pythons):
        line += " ; " + " and ".join(f'python_full_version {s.operator} "{s.version}"' for s in sorted(needs, key=str))
    pins[key] = line
print(f"""# The lock: the exact versions the test suite was last run with (make test and CI install them).
# A pip constraints file: it pins versions and adds no packages, so one file serves every platform,
# the CPU and the CUDA build of torch, and installs with or without extras:
#     pip install -c constraints.txt -e '.[dev]'
# Generated by `make lock` (Makefile): a fresh .venv-latest with the newest releases pyproject.toml
# allows (torch and triton held at the Makefile's TORCH_VERSION / TRITON_VERSION), the default suite
# passed there, then every installed distribution written here, without reasonkit itself, local labels
# such as +cpu, or the nvidia-*/cuda-* packages of the CUDA build (torch pins those itself). A marker
# `; python_full_version >= "3.X"` is that release's own Requires-Python: older Pythons choose freely.
# Do not edit by hand; rerun `make lock`.
# Python {platform.python_version()} on {platform.system()} {platform.machine()}""")
for key in sorted(pins):
    print(pins[key])
endef
export LOCK_WRITE_PY

# After make setup: every installed distribution must be the version the lock pins. One the lock does
# not name is reported; with LOCK_STRICT=1 (.ci/run sets it: a fresh venv) it fails the install on the
# Python the lock was made with, as it means a dependency was added without `make lock`. Elsewhere
# it may be a leftover of an older lock (`make clean setup` rebuilds) or a backport an older Python needs.
define LOCK_CHECK_PY
import importlib.metadata as md, platform, re, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
text = open(sys.argv[1]).read()
pins = {}
for raw in text.splitlines():
    raw = raw.split("#")[0].strip()
    if raw:
        req = Requirement(raw)
        pins[canonicalize_name(req.name)] = req
made_with = re.search(r"^# Python (\d+\.\d+)", text, re.M)
same_python = made_with is not None and made_with.group(1) == ".".join(platform.python_version_tuple()[:2])
wrong, unpinned = [], []
for dist in md.distributions():
    key = canonicalize_name(dist.metadata["Name"])
    if key == "reasonkit" or key.startswith(("nvidia-", "cuda-")):
        continue
    req = pins.get(key)
    if req is None:
        unpinned.append(f"{key}=={dist.version}")
    elif (req.marker is None or req.marker.evaluate()) and not req.specifier.contains(dist.version, prereleases=True):
        wrong.append(f"{key}=={dist.version} (lock: {req.specifier})")
for item in wrong:
    print(f"lock check: installed {item}", file=sys.stderr)
for item in unpinned:
    print(f"lock check: installed {item}, which {sys.argv[1]} does not name", file=sys.stderr)
strict = sys.argv[2:] == ["1"]
sys.exit(1 if wrong or (unpinned and same_python and strict) else 0)
endef
export LOCK_CHECK_PY
