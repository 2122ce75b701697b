# Two entry points: `make study` (set up + run the default study) and `make test`.
# Override on the command line, e.g. `make study CORES=8 TORCH_INDEX=<PyTorch CUDA wheel index>`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= 2
SNAKEMAKE_ARGS ?=

STAMP := $(VENV)/.facesym-installed

.PHONY: setup study test lint clean-study

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(VENV)/bin/python -m pip install --quiet -e ".[test,onnx,photos]"
	$(VENV)/bin/facesym compile
	touch $@

study: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/snakemake --lint

test: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/python -m pytest -q

clean-study:
	rm -rf results/default .snakemake/incomplete
