"""A whole profile (``params.yaml`` or ``configs/*.yaml``): every section, validated.

:func:`load_params` reads a file into :class:`Params`; an unknown key or a wrong type raises
:class:`~genprm.config.ConfigError` naming the file and the dotted key. Stages load the
profile here and hand plain values to the library, which never reads ``params.yaml`` itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from genprm.config import (
    ConfigError,
    PolicyEvalConfig,
    PrepareConfig,
    SamplingConfig,
    Section,
    WorldBenchConfig,
    derive_seeds,
    describe_error,
    load_yaml,
)
from genprm.evaluation.config import BestOfNConfig, CriticConfig, ProcessBenchEvalConfig
from genprm.kernels import KERNEL_PATHS
from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig
from genprm.rationale.config import SynthesisConfig
from genprm.registry import RegisterConfig
from genprm.training.config import TrainingConfig
from genprm.world.policy import PolicyConfig
from genprm.world.problems import WorldConfig

__all__ = ["Params", "load_params"]


class Params(Section):
    """All sections of a profile. Sections of later stages are added as those stages land."""

    seed: int = 0
    kernel_path: str = Field("native", description="CPU kernel path every stage runs under (genprm.kernels)")
    world: WorldConfig = Field(default_factory=WorldConfig)
    prepare: PrepareConfig
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    policy_eval: PolicyEvalConfig = Field(default_factory=PolicyEvalConfig)
    world_bench: WorldBenchConfig = Field(default_factory=WorldBenchConfig)
    rollout: RolloutConfig | None = None
    montecarlo: MonteCarloConfig | None = None
    labels: LabelsConfig | None = None
    synthesis: SynthesisConfig | None = None
    train: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluate_processbench: ProcessBenchEvalConfig | None = None
    best_of_n: BestOfNConfig | None = None
    critic: CriticConfig | None = None
    registry: RegisterConfig | None = None

    @field_validator("kernel_path")
    @classmethod
    def _known_kernel_path(cls, value: str) -> str:
        if value not in KERNEL_PATHS:
            raise ValueError(f"unknown kernel path {value!r}; known: {', '.join(KERNEL_PATHS)}")
        return value

    @model_validator(mode="after")
    def _world_shapes(self) -> Params:
        """A world source's ``shape`` must give a valid world together with the ``world`` section."""
        sources = [(f"prepare.train.{i}", s) for i, s in enumerate(self.prepare.train)]
        sources += [(f"prepare.eval.{k}", s) for k, s in self.prepare.eval.items()]
        for where, src in sources:
            if src.shape:
                try:
                    self.world.reshaped(src.shape)
                except ValidationError as exc:
                    raise ValueError(f"{where}.shape: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        return self


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    """Read and validate a whole profile; every section's seeds are shifted by the top-level ``seed``.

    A stage's effective seed is its own ``seed`` plus ``1000 * seed`` (:func:`genprm.config.derive_seeds`),
    so ``seed: 1`` re-draws every random choice of the pipeline while ``seed: 0`` keeps the values written.
    """
    path = Path(path)
    data = load_yaml(path)
    try:
        params = Params.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, Params, path)) from None
    for name in type(params).model_fields:
        if name not in ("seed", "kernel_path"):
            derive_seeds(getattr(params, name), params.seed)
    return params
