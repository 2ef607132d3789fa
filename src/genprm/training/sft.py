"""Supervised fine-tuning of the GenPRM with trl's ``SFTTrainer`` (LoRA through peft, or full).

:func:`build_dataset` tokenizes the :class:`~genprm.records.SFTExample` conversations with the
loss mask of :mod:`genprm.training.masking` into a pre-tokenized ``datasets.Dataset``
(``input_ids`` + ``labels``), which trl 1.x trains on as is. :func:`train_sft` runs the
trainer for ``max_steps`` optimizer steps (effective batch ``per_device_batch_size x
grad_accum x devices``), checkpoints every ``save_steps`` into ``checkpoint_dir`` and resumes
from the last checkpoint there when the run was killed (a fingerprint of the config and data
keeps a stale checkpoint from being resumed). It writes a standard model folder
(``model.safetensors``, config, tokenizer files) that the ``hf`` and ``vllm`` engines load,
and in LoRA mode the adapter too.

Use::

    report = train_sft(examples, "models/genprm", TrainingConfig(), adapter_dir="models/genprm-adapter",
                       checkpoint_dir="work/train")

Several GPUs: the same code under accelerate (FSDP), e.g.::

    accelerate launch --config_file configs/accelerate/fsdp.yaml stages/train.py --params configs/paper.yaml
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from genprm.records import SFTExample, replace_dir
from genprm.training.config import TrainingConfig
from genprm.training.masking import IGNORE, judgement_tokens, tokenize_example, weighted_lm_loss

__all__ = ["build_dataset", "fingerprint", "train_sft", "loss_history"]

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"


def build_dataset(examples: list[SFTExample], tokenizer, cfg: TrainingConfig):
    """Tokenized conversations with labels; rows left without a trained token are dropped."""
    from datasets import Dataset

    rows = [
        tokenize_example(ex.messages, tokenizer, train_on_prefixes=cfg.train_on_prefixes, max_length=cfg.max_length)
        for ex in examples
    ]
    kept = [r for r in rows if any(t != IGNORE for t in r["labels"])]
    if len(kept) < len(rows):
        log.warning("dropped %d of %d conversations with no trained token (max_length %d)",
                    len(rows) - len(kept), len(rows), cfg.max_length)
    if not kept:
        raise ValueError("no conversation has a trained token")
    return Dataset.from_list(kept)


def fingerprint(cfg: TrainingConfig, dataset) -> str:
    """Hash of everything a checkpoint depends on (every setting but checkpointing/logging, and the data).

    The budget is part of it: the learning-rate schedule depends on ``max_steps``, so a run with
    another budget is another run (resuming it would neither equal an uninterrupted run nor stop
    at the new budget when the checkpoint is already past it).
    """
    h = hashlib.sha256()
    h.update(json.dumps(cfg.model_dump(exclude={"save_steps", "logging_steps", "save_total_limit"}),
                        sort_keys=True).encode())
    for row in dataset:
        h.update(json.dumps([row["input_ids"], row["labels"]]).encode())
    return h.hexdigest()[:16]


def _resume_point(checkpoint_dir: Path, fp: str, is_main: bool) -> str | None:
    """The last checkpoint of a run with the same fingerprint; a stale folder is cleared."""
    from transformers.trainer_utils import get_last_checkpoint

    marker = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.is_dir():
        same = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp
        if same:
            return get_last_checkpoint(str(checkpoint_dir))
        if is_main and any(checkpoint_dir.iterdir()):
            log.info("checkpoints in %s are from other settings or data: starting afresh", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
    if is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": fp}))
    return None


def loss_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """``[{step, loss}]`` from a trainer's log history."""
    return [{"step": int(e["step"]), "loss": float(e["loss"])} for e in log_history if "loss" in e and "step" in e]


def _bf16(cfg: TrainingConfig) -> bool:
    import torch

    if cfg.bf16 is not None:
        return cfg.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def train_sft(
    examples: list[SFTExample],
    out_dir: str | os.PathLike,
    cfg: TrainingConfig,
    *,
    checkpoint_dir: str | os.PathLike,
    adapter_dir: str | os.PathLike | None = None,
    callbacks: list | None = None,
) -> dict[str, Any]:
    """Fine-tune ``cfg.base_model`` on ``examples``; write the model folder(s); return a report.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects. The report holds
    ``steps``, ``first_loss``, ``last_loss``, ``loss_curve``, ``seconds``, token counts and
    ``resumed_from`` (the checkpoint the run continued from, or None).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    checkpoint_dir = Path(checkpoint_dir)

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(examples, tokenizer, cfg)
    label_tokens = sum(sum(t != IGNORE for t in r) for r in dataset["labels"])
    fp = fingerprint(cfg, dataset)

    args = SFTConfig(
        output_dir=str(checkpoint_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of max_steps
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_length,
        bf16=_bf16(cfg),
        gradient_checkpointing=cfg.gradient_checkpointing,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not cuda,
        report_to="none",
        disable_tqdm=os.environ.get("GENPRM_PROGRESS", "").strip().lower() in ("0", "false", "no", "off"),
        dataset_kwargs={},
    )
    peft_config = None
    if cfg.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype="auto")
    trainer_cls = SFTTrainer
    if cfg.judgement_weight != 1.0:
        trainer_cls = _judgement_weighted(SFTTrainer, judgement_tokens(tokenizer), cfg.judgement_weight)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    is_main = trainer.is_world_process_zero()
    resume = _resume_point(checkpoint_dir, fp, is_main)
    trainer.accelerator.wait_for_everyone()
    if resume:
        log.info("resuming from %s", resume)

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0

    final = checkpoint_dir / "final"
    trainer.save_model(str(final))  # every rank: gathers sharded weights under FSDP
    trainer.accelerator.wait_for_everyone()
    if is_main:
        _export(final, Path(out_dir), None if adapter_dir is None else Path(adapter_dir), cfg, tokenizer)
    trainer.accelerator.wait_for_everyone()

    curve = loss_history(trainer.state.log_history)
    steps = trainer.state.global_step
    eff_batch = cfg.per_device_batch_size * cfg.grad_accum * trainer.accelerator.num_processes
    per_example = label_tokens / len(dataset)
    return {
        "mode": cfg.mode,
        "steps": steps,
        "effective_batch": eff_batch,
        "examples": len(dataset),
        "first_loss": curve[0]["loss"] if curve else None,
        "last_loss": curve[-1]["loss"] if curve else None,
        "loss_curve": curve,
        "seconds": round(seconds, 2),
        "dataset_trained_tokens": int(label_tokens),
        "tokens_trained": int(round(per_example * eff_batch * (steps - _step_of(resume)))),
        "resumed_from": resume,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }


def _judgement_weighted(base: type, judgement: tuple[int, tuple[int, int]], weight: float) -> type:
    """``base`` (trl's SFTTrainer) with the loss of :func:`~genprm.training.masking.weighted_lm_loss`."""

    class JudgementWeightedTrainer(base):
        loss_is_scaled_for_ga = True  # divided by the trained tokens of the whole accumulated batch

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            if num_items_in_batch is None:  # the trainer did not count: this batch alone, scaled as trl would
                num_items_in_batch = (inputs["labels"][:, 1:] != IGNORE).sum() * self.args.gradient_accumulation_steps
            loss = weighted_lm_loss(outputs.logits, inputs["labels"], inputs["input_ids"], judgement=judgement,
                                    weight=weight, num_items=num_items_in_batch)
            if self.args.average_tokens_across_devices:  # num_items counts every process's tokens (as Trainer does)
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return JudgementWeightedTrainer


def _step_of(checkpoint: str | None) -> int:
    return 0 if checkpoint is None else int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _export(final: Path, out_dir: Path, adapter_dir: Path | None, cfg: TrainingConfig, tokenizer) -> None:
    """Standard model folder (merged in LoRA mode) and, for LoRA, the adapter folder; atomic."""
    junk = {"training_args.bin"}
    if cfg.mode == "full":
        with replace_dir(out_dir) as tmp:
            for f in final.iterdir():
                if f.is_file() and f.name not in junk:
                    shutil.copy2(f, tmp / f.name)
            tokenizer.save_pretrained(tmp)
        return

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if adapter_dir is not None:
        with replace_dir(adapter_dir) as tmp:
            for f in final.iterdir():
                if f.is_file() and f.name not in junk:
                    shutil.copy2(f, tmp / f.name)
            tokenizer.save_pretrained(tmp)
    base = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype="auto")
    merged = PeftModel.from_pretrained(base, str(final)).merge_and_unload()
    with replace_dir(out_dir) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
