"""Config sections of the evaluation stages (``evaluate_processbench``, ``best_of_n``, ``critic``).

Each is a :class:`genprm.config.Section` (unknown keys are errors) with an
:class:`~genprm.config.EngineConfig` for the verifier (and the policy, where one samples); model
paths come from the stage unless ``engine.settings.model`` names one (a Hub id on GPU machines).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genprm.config import EngineConfig, Section

__all__ = ["VerifierConfig", "ProcessBenchEvalConfig", "BestOfNConfig", "CriticConfig"]


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

    def options(self, threshold: float = 0.5):
        """These settings as :class:`genprm.verifier.VerifierOptions`."""
        from genprm.verifier import VerifierOptions

        return VerifierOptions(
            n_paths=self.n_paths, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed,
            max_tokens=self.max_tokens, max_code_rounds=self.max_code_rounds, code_timeout_s=self.code_timeout_s,
            max_active=self.max_active, threshold=threshold,
        )


class ProcessBenchEvalConfig(Section):
    """The ``evaluate_processbench`` stage."""

    data: str = Field(
        "data/world_processbench/world.json",
        description="ProcessBench: a folder of <split>.json files, one file, or a Hub id (Qwen/ProcessBench)",
    )
    splits: list[str] | None = Field(
        None, description="splits to read; None: all four of a folder, or the split a single file holds"
    )
    limit: int | None = Field(None, ge=1, description="first N samples per split")
    threshold: float = Field(0.5, ge=0, le=1)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)


class BestOfNConfig(Section):
    """The ``best_of_n`` stage: N policy samples per problem of an evaluation set, scored by the PRM."""

    eval_set: str = Field("world_test", description="a prepared evaluation set (prepare.eval)")
    n_problems: int | None = Field(None, ge=1, description="first N problems of the set (None: all)")
    policy_engine: EngineConfig = Field(default_factory=EngineConfig)
    temperature: float | None = Field(None, ge=0, description="None: the sampling section's")
    n_max: int = Field(16, ge=1)
    draws: int = Field(20, ge=1)
    seed: int = 0
    vote_score: Literal["last", "min", "avg"] = "last"
    tie_margin: float = Field(
        0.0, ge=0, le=1, description="PRM-Last/Min/Avg: scores within this of the best are tied; the answer "
        "most candidates share wins a tie (0: only equal scores tie)",
    )
    use_equivalence: bool = Field(False, description="merge answer groups with grading.is_equivalent")
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)


class CriticConfig(Section):
    """The ``critic`` stage: critic refinement against self-refinement (:mod:`genprm.evaluation.refinement`)."""

    eval_set: str = Field("world_test", description="a prepared evaluation set (prepare.eval)")
    n_problems: int | None = Field(None, ge=1)
    turns: int = Field(3, ge=1)
    mode: Literal["feedback", "resample"] = Field(
        "feedback", description="feedback: the policy reads the critique (chat LLMs); resample: it continues "
        "from the last unflagged step (any policy, the world's)",
    )
    threshold: float = Field(0.5, ge=0, le=1)
    temperature: float | None = Field(None, ge=0, description="None: the sampling section's")
    seed: int = 0
    policy_engine: EngineConfig = Field(default_factory=EngineConfig)
    verifier: VerifierConfig = Field(default_factory=lambda: VerifierConfig(n_paths=1))
