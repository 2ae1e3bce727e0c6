# The README's two commands are `make demo` (set up + main job) and `make test` (set up + tests).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup system-deps demo test test-slow lint bench docs compat-mujoco33 clean

setup: system-deps $(STAMP)

# Off-screen MuJoCo rendering needs OSMesa (Debian: libosmesa6). Installed only when missing.
system-deps:
	@if ! ldconfig -p | grep -q libOSMesa; then \
	  echo "installing libosmesa6 (off-screen rendering)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libosmesa6 >/dev/null; \
	fi

# torch first, pinned, so that pip takes the local CPU wheel instead of a CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/adapt-robot demo launch/demo.yaml

lint: setup
	$(VENV)/bin/ruff check adapt_robot sim export tests
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -n 2 tests

test-slow: setup
	$(VENV)/bin/pytest -q -n 2 -m slow tests

bench: setup
	$(VENV)/bin/adapt-robot bench sim

docs: setup
	$(VENV)/bin/adapt-robot spec point grasp door > docs/task_families.md

# The oldest supported MuJoCo (3.3.0): a second venv without torch, running the sim tests.
compat-mujoco33: system-deps
	python3 -m venv .venv-mj33
	.venv-mj33/bin/pip install -q "mujoco==3.3.0" pybullet gymnasium imageio pillow pyyaml numpy \
	  onnxruntime pytest pytest-xdist hypothesis
	.venv-mj33/bin/pip install -q --no-deps -e .
	.venv-mj33/bin/python -c "import mujoco; print('mujoco', mujoco.__version__)"
	.venv-mj33/bin/pytest -q -n 2 tests/sim

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
