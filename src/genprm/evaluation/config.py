"""Config sections of the evaluation stages (``evaluate_processbench``, ``best_of_n``).

Each is a :class:`genprm.config.Section` (unknown keys are errors) with an
:class:`~genprm.config.EngineConfig` for the verifier; the model path comes from the stage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genprm.config import EngineConfig, Section

__all__ = ["VerifierConfig", "ProcessBenchEvalConfig", "BestOfNConfig"]


class VerifierConfig(Section):
    """How the PRM scores steps (GenPRM defaults: the paper's sampling, Maj@8)."""

    kind: Literal["genprm", "direct"] = "genprm"
    engine: EngineConfig = Field(default_factory=EngineConfig)
    n_paths: int = Field(8, ge=1, description="Maj@N verification paths per step (1: Pass@1)")
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int | None = Field(20, ge=0)
    max_tokens: int = Field(2048, ge=1, description="generated tokens per step turn")
    max_code_rounds: int = Field(3, ge=0)
    code_timeout_s: float = Field(5.0, gt=0)
    max_active: int = Field(512, ge=1, description="(solution, path) pairs in flight")
    seed: int = 0


class ProcessBenchEvalConfig(Section):
    """The ``evaluate_processbench`` stage."""

    splits: list[str] | None = Field(
        None, description="splits to read; None: all four of a folder, or the split a single file holds"
    )
    limit: int | None = Field(None, ge=1, description="first N samples per split")
    threshold: float = Field(0.5, ge=0, le=1)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)


class BestOfNConfig(Section):
    """The ``best_of_n`` stage."""

    n_max: int = Field(16, ge=1)
    draws: int = Field(20, ge=1)
    seed: int = 0
    vote_score: Literal["last", "min", "avg"] = "last"
    use_equivalence: bool = Field(False, description="merge answer groups with grading.is_equivalent")
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
