"""SFT through trl on the tiny world model: LoRA, full fine-tuning, resume, export, the stage."""

from __future__ import annotations

import json

import pytest
import yaml

from genprm.records import write_records
from genprm.training import TrainingConfig, train_sft

pytestmark = pytest.mark.slow


def load_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def cfg_for(base_model, **kw) -> TrainingConfig:
    kw = {"max_steps": 12, "save_steps": 6, "logging_steps": 2, "per_device_batch_size": 4, "lr": 2e-3, **kw}
    return TrainingConfig(base_model=str(base_model), **kw)


@pytest.fixture(scope="module")
def full_run(base_model, examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    report = train_sft(examples, root / "model", cfg_for(base_model, mode="full", max_steps=30),
                       checkpoint_dir=root / "ck")
    return root, report


def test_full_fine_tuning_changes_weights_and_lowers_loss(full_run, base_model):
    root, report = full_run
    assert report["steps"] == 30 and report["resumed_from"] is None
    assert report["last_loss"] < report["first_loss"] - 0.5
    before, after = load_weights(base_model), load_weights(root / "model")
    assert before.keys() == after.keys()
    assert all(not (before[k] == after[k]).all() for k in before if k.endswith("q_proj.weight"))
    assert (root / "model" / "tokenizer.json").is_file() and (root / "model" / "config.json").is_file()


def test_judgement_weight_reaches_the_trainer_loss(base_model, examples, tmp_path):
    """Same seed and data: the weighted run's first loss adds (w - 1) x the verdict tokens' loss, then it trains."""
    reports = {}
    for w in (1.0, 10.0):
        reports[w] = train_sft(examples, tmp_path / f"m{w}", cfg_for(base_model, mode="full", judgement_weight=w),
                               checkpoint_dir=tmp_path / f"ck{w}")
    plain, weighted = reports[1.0], reports[10.0]
    assert weighted["first_loss"] > plain["first_loss"] + 0.1
    assert weighted["last_loss"] < weighted["first_loss"]


def test_hf_engine_loads_and_generates(full_run):
    from genprm.conversation import SYSTEM_PROMPT
    from genprm.engine import GenerationRequest, create_generator

    root, _ = full_run
    gen = create_generator("hf", model=str(root / "model"), dtype="float32")
    try:
        [[c]] = gen.generate([GenerationRequest(
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Compute 2 + 3.\n2 + 3 = 5"}],
            assistant_prefix="<analyze>\nLet's analyze the Paragraph 1 step by step: ", temperature=0.0, max_tokens=20)])
    finally:
        gen.close()
    assert len(c.token_ids) > 0 and c.text


def test_lora_trains_adapter_only_and_merges(base_model, examples, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base_before = load_weights(base_model)
    report = train_sft(examples, tmp_path / "model", cfg_for(base_model, mode="lora", lr=5e-3),
                       checkpoint_dir=tmp_path / "ck", adapter_dir=tmp_path / "adapter")
    assert report["steps"] == 12 and report["last_loss"] < report["first_loss"]
    adapter = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # initialised at zero, trained away from it
    base_after = load_weights(base_model)
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)
    merged = load_weights(tmp_path / "model")
    assert merged.keys() == base_before.keys()  # a standard folder, no lora_ keys
    assert any(not torch.equal(base_before[k], merged[k]) for k in merged)

    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad():
        peft_logits = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model),
                                                str(tmp_path / "adapter"))(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(tmp_path / "model")(ids).logits
    assert torch.allclose(peft_logits, merged_logits, atol=1e-4)


@pytest.mark.vllm
def test_vllm_and_hf_load_the_merged_lora_folder(base_model, examples, tmp_path):
    from genprm.engine import GenerationRequest, create_generator

    train_sft(examples, tmp_path / "model", cfg_for(base_model, mode="lora", lr=5e-3, max_steps=4),
              checkpoint_dir=tmp_path / "ck", adapter_dir=tmp_path / "adapter")
    request = GenerationRequest(messages=examples[0].messages[:2], max_tokens=12, temperature=0.0)
    texts = []
    for backend in ("hf", "vllm"):
        gen = create_generator(backend, model=str(tmp_path / "model"), dtype="float32")
        try:
            [[out]] = gen.generate([request])
        finally:
            gen.close()
        texts.append(out.text)
    assert texts[0] and texts[0] == texts[1]  # greedy: both engines read the same merged weights


class Crash(Exception):
    pass


def test_killed_run_resumes_from_last_checkpoint(base_model, examples, tmp_path):
    from transformers import TrainerCallback

    class CrashAt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 5:
                raise Crash

    class Count(TrainerCallback):
        steps: list[int] = []

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(state.global_step)

    cfg = cfg_for(base_model, mode="full", max_steps=6, save_steps=2)
    with pytest.raises(Crash):
        train_sft(examples, tmp_path / "model", cfg, checkpoint_dir=tmp_path / "ck", callbacks=[CrashAt()])
    assert not (tmp_path / "model").exists()
    assert (tmp_path / "ck" / "checkpoint-4").is_dir()
    count = Count()
    report = train_sft(examples, tmp_path / "model", cfg, checkpoint_dir=tmp_path / "ck", callbacks=[count])
    assert report["resumed_from"].endswith("checkpoint-4")
    assert count.steps == [5, 6] and report["steps"] == 6
    assert (tmp_path / "model" / "model.safetensors").is_file()

    # other settings: the stale checkpoints are not resumed
    report = train_sft(examples, tmp_path / "model", cfg.model_copy(update={"lr": 1e-3}),
                       checkpoint_dir=tmp_path / "ck")
    assert report["resumed_from"] is None and report["steps"] == 6
    # another budget is another run (the lr schedule depends on it): a checkpoint past it is not resumed
    report = train_sft(examples, tmp_path / "model", cfg.model_copy(update={"lr": 1e-3, "max_steps": 4}),
                       checkpoint_dir=tmp_path / "ck")
    assert report["resumed_from"] is None and report["steps"] == 4


def test_stage_writes_models_metrics_plot_and_mlflow_run(base_model, examples, tmp_path, monkeypatch, repo, load_script):
    from genprm.params import Params

    if "train" not in Params.model_fields:
        pytest.skip("genprm.params.Params has no 'train' section yet")

    from mlflow.tracking import MlflowClient

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"] = {"base_model": str(base_model), "mode": "lora", "max_steps": 4, "save_steps": 2,
                       "logging_steps": 1, "per_device_batch_size": 4}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_records(tmp_path / "data" / "sft" / "train.jsonl", examples[:16])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/t.db")
    monkeypatch.setenv("GENPRM_TRACKING", "1")
    monkeypatch.setenv("GENPRM_TRACKING_STRICT", "1")
    stage = load_script(repo / "stages" / "train.py")
    assert stage.main(["--params", "params.yaml"]) == 0

    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 4 and metrics["tokens_trained"] > 0 and metrics["first_loss"] > 0
    curve = json.loads((tmp_path / "plots" / "train_loss.json").read_text())
    assert [p["step"] for p in curve] == [1, 2, 3, 4]
    assert (tmp_path / "models" / "genprm" / "model.safetensors").is_file()
    assert (tmp_path / "models" / "genprm-adapter" / "adapter_model.safetensors").is_file()
    client = MlflowClient(f"sqlite:///{tmp_path}/t.db")
    [run] = client.search_runs([client.get_experiment_by_name("genprm").experiment_id])
    assert run.data.params["mode"] == "lora" and run.data.params["lora.r"] == "16"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 4


def test_accelerate_fsdp_config_is_valid(repo):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(repo / "configs" / "accelerate" / "fsdp.yaml"))
    assert cfg.distributed_type == "FSDP" and cfg.fsdp_config["fsdp_version"] == 2
