# Two entry points on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Keep every cache inside the project; tests and the demo never reach the network.
export HF_HOME := $(CURDIR)/.cache/huggingface
export XDG_CACHE_HOME := $(CURDIR)/.cache
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export GRADIO_TEMP_DIR := $(CURDIR)/.cache/gradio
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_HUB_DISABLE_XET := 1
export TOKENIZERS_PARALLELISM := false
# Real models and data sets converted by `make assets` (benchmarks/assets.py); never committed.
export HFDC_ASSETS_DIR ?= $(CURDIR)/.cache/assets

.PHONY: install demo test bench assets clean

# ddranking 0.2.0 goes in with --no-deps: the tests check hfdc.ddranking against its formulas' source text; its
# torchvision / kornia / timm dependencies are not needed for that and stay out.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/pip install -q --no-deps ddranking==0.2.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hfdc demo --output_dir outputs

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(BIN)/python benchmarks/render.py

assets: $(STAMP)
	$(BIN)/python -m benchmarks.assets

clean:
	rm -rf $(VENV) .cache outputs
