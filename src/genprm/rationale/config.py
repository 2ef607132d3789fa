"""Config section of the ``synthesis`` stage (GenPRM part 4): teacher, format, budgets, gate.

A :class:`genprm.config.Section` (unknown keys are errors). ``engine`` is the teacher's
:class:`~genprm.config.EngineConfig`: the embedded default is the world's rule teacher
(``world-teacher``) in the ``per_step`` format; a general LLM teacher (``vllm`` / ``openai``) uses
``whole_solution`` (the paper's prompt), a published GenPRM checkpoint ``per_step``::

    cfg = load_section("params.yaml", "synthesis", SynthesisConfig)
    limits = cfg.limits()
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from genprm.config import EngineConfig, Section
from genprm.rationale.synthesis import SynthesisLimits

__all__ = ["SandboxLimits", "SynthesisGateBounds", "SynthesisConfig"]


class SandboxLimits(Section):
    """Limits of the sandbox that runs the teacher's code (one session per solution)."""

    timeout_s: float = Field(5.0, gt=0, description="wall time per snippet (the released code: 5 s)")
    memory_mb: int = Field(1024, ge=32, description="address space a session may add")
    pool_size: int = Field(4, ge=0, description="pre-forked sessions kept ready")
    min_isolation: Literal["none", "basic", "standard", "strict"] = "standard"


class SynthesisGateBounds(Section):
    """Bounds of the SFT gate's Yes/No balance: share of Yes judgements over all assistant turns."""

    min_yes_share: float = Field(0.2, ge=0, le=1)
    max_yes_share: float = Field(0.95, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> SynthesisGateBounds:
        if self.min_yes_share > self.max_yes_share:
            raise ValueError("min_yes_share > max_yes_share")
        return self


class SynthesisConfig(Section):
    """Part 4: rationale synthesis with executed code, consensus filtering, SFT dataset."""

    engine: EngineConfig = Field(default_factory=lambda: EngineConfig(backend="world-teacher"))
    format: Literal["per_step", "whole_solution"] = "per_step"
    label: str = Field("rpe", description="which StepValues label the teacher must agree with")
    max_code_rounds: int = Field(3, ge=0, description="executed code blocks per step")
    max_tokens_per_step: int = Field(2048, ge=1, description="tokens per step turn (whole_solution: times steps)")
    fallback_tokens: int = Field(32, ge=1, description="tokens for the forced judgement after a fallback")
    fallback_judgement: Literal["generate", "logits"] = Field(
        "generate",
        description="per_step fallback turns: 'generate' (the released code) samples the judgement after the "
        "forced prefix, and a turn whose analysis was cut or whose judgement does not parse drops its review; "
        "'logits' closes a cut analysis with </analyze> and reads the judgement from the teacher's logits "
        "(P(Yes) vs P(No) after the forced prefix, as the verifier does), for weak teachers (configs/smoke.yaml)",
    )
    step_timeout_s: float = Field(120.0, gt=0, description="wall time per step (whole_solution: times steps)")
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    style: Literal["code", "card"] = Field("code", description="user turn 1: problem + newline + step (code) or card")
    max_active: int = Field(128, ge=1, description="solutions reviewed at once (one batch per round)")
    exec_workers: int = Field(4, ge=1, description="threads running code of different solutions")
    max_repeats: int = Field(8, ge=2, description="a line repeated this often marks a runaway review")
    balance: Literal["keep", "drop"] = Field("keep", description="drop: as many all-Yes examples as with a No")
    seed: int = 0
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    gate: SynthesisGateBounds = Field(default_factory=SynthesisGateBounds)

    def limits(self) -> SynthesisLimits:
        return SynthesisLimits(
            fmt=self.format,
            max_code_rounds=self.max_code_rounds,
            max_tokens_per_step=self.max_tokens_per_step,
            fallback_tokens=self.fallback_tokens,
            fallback_judgement=self.fallback_judgement,
            step_timeout_s=self.step_timeout_s,
            code_timeout_s=self.sandbox.timeout_s,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            style=self.style,
            max_active=self.max_active,
            exec_workers=self.exec_workers,
        )
