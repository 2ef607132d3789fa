"""The ``train`` section of a profile: how the GenPRM is fine-tuned (see :mod:`genprm.training`).

``mode: auto`` (the default) is LoRA on a CPU and full fine-tuning with a CUDA GPU. The embedded
world sets ``mode: full``: its GenPRM tags are tokens the policy never saw, whose embeddings an
adapter would not train. ``configs/paper.yaml`` sets the paper's values (lr 2e-6, effective
batch 64, bf16 on GPUs).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from genprm.config import Section

__all__ = ["LoraSettings", "TrainingConfig"]


class LoraSettings(Section):
    """LoRA adapter shape (peft ``LoraConfig``); used when ``mode: lora``."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or 'all-linear' (every linear layer but the output head)"
    )


class TrainingConfig(Section):
    """SFT of the GenPRM on the kept rationales (method part 5)."""

    base_model: str = Field("models/policy", description="base model: local folder or Hub id")
    mode: Literal["auto", "lora", "full"] = Field(
        "auto", description="'lora' (peft adapter, merged at the end), 'full', or 'auto': lora without a CUDA GPU, "
        "full with one (resolved when the section is read)",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    lr: float = Field(1e-3, gt=0, description="peak learning rate (paper: 2e-6 for full fine-tuning)")
    scheduler: str = Field("cosine", description="transformers lr scheduler type")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int = Field(250, ge=1, description="budget in optimizer steps")
    per_device_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1, description="effective batch = per_device_batch_size x grad_accum x devices")
    max_length: int = Field(2048, ge=8, description="tokens per conversation; longer ones are cut at the end")
    train_on_prefixes: bool = Field(False, description="train on the forced stage prefixes too")
    judgement_weight: float = Field(
        1.0, ge=0, description="loss weight of each judgement's Yes/No token, where the reward is read (1: plain SFT)"
    )
    bf16: bool | None = Field(None, description="bf16 mixed precision; None: on when a bf16-capable GPU is present")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large models on GPUs)")
    save_steps: int = Field(100, ge=1, description="checkpoint every N optimizer steps (a killed run resumes)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    logging_steps: int = Field(10, ge=1)
    seed: int = 0
    threads: int = Field(1, ge=1, description="torch CPU threads (1 is fastest for tiny models on a busy CPU)")

    @model_validator(mode="after")
    def _resolve_mode(self) -> TrainingConfig:
        if self.mode == "auto":
            import torch

            object.__setattr__(self, "mode", "full" if torch.cuda.is_available() else "lora")
        return self
