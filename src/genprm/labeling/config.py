"""Config sections of the labeling stages: ``rollout``, ``montecarlo`` and ``labels``.

Each is a :class:`genprm.config.Section` (unknown keys are errors); ``engine`` is the
project's :class:`genprm.config.EngineConfig` (backend + settings; the stage passes the model
folder unless ``settings.model`` is set). Stages read them with :func:`load_section` from
``params.yaml``; the library itself takes plain values::

    cfg = load_section("params.yaml", "montecarlo", MonteCarloConfig)
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator

from genprm.config import ConfigError, EngineConfig, Section, derive_seeds, load_yaml

__all__ = [
    "RolloutConfig",
    "MonteCarloConfig",
    "AdaptiveConfig",
    "LabelsConfig",
    "GateBounds",
    "load_section",
    "DEFAULT_K_THRESHOLDS",
]

DEFAULT_K_THRESHOLDS: list[tuple[float, int]] = [(0.1, 128), (0.9, 64), (1.0, 32)]
"""The paper's dynamic K: K=128 if MC(s_1) < 0.1, 64 if < 0.9, 32 if < 1 (and at 1)."""


class RolloutConfig(Section):
    """Part 1: step-forced policy rollouts until both outcomes exist."""

    engine: EngineConfig
    n_problems: int | None = Field(None, ge=1, description="use the first N training problems (None: all)")
    paths_per_round: int = Field(8, ge=1)
    max_paths: int = Field(32, ge=1, description="stop sampling a problem after this many paths")
    keep_correct: int = Field(1, ge=1, description="correct paths kept per problem")
    keep_incorrect: int = Field(1, ge=1, description="incorrect paths kept per problem")
    one_sided: Literal["drop", "keep"] = Field(
        "drop",
        description="a problem with no correct path (or no incorrect path) after max_paths: "
        "drop: drop it and count it (the paper's rule); "
        "keep: keep up to keep_correct / keep_incorrect paths of the outcome it has, with mc_first 0.0 or 1.0 "
        "and metadata.one_sided = no_correct / no_incorrect (the labels gate accepts such problems); "
        "e.g. for a weak policy that rarely solves a problem",
    )
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(128, ge=1)
    seed: int = 0
    shard_size: int = Field(50, ge=1, description="problems per shard")


class AdaptiveConfig(Section):
    """Sequential Monte-Carlo sampling that stops once what a step's value decides is settled (``adaptive.py``).

    The defaults are the benchmarked joint rule (``bench/labeling.py``, paper K: 5.7x fewer
    completions with every RPE label identical on the default world's benchmark set, 3.3x at
    97.4% on a harder one; :data:`genprm.labeling.adaptive.DEFAULT_CONFIDENCE`; the module
    docstring of :mod:`genprm.labeling.adaptive` states what each bound guarantees).
    """

    enabled: bool = False
    chunk: int = Field(8, ge=1, description="completions per step per later round")
    first_chunk: int | None = Field(4, ge=1, description="completions of a step's first round (None: chunk)")
    confidence: float | None = Field(
        0.88, gt=0, lt=1, description="confidence of the bound; None: stop on the exact bound only"
    )
    bound: Literal["predictive", "wilson", "exchangeable"] = Field(
        "predictive",
        description="predictive: Bayesian P(fixed-K label differs) <= 1 - confidence; "
        "exchangeable: prior-free hypergeometric test vs the fixed-K label (Bonferroni over looks); "
        "wilson: interval around the true MC vs tau (Bonferroni over looks)",
    )
    epsilon: float = Field(0.8, gt=0, description="the RPE threshold whose decision is settled")
    prior: tuple[float, float] = Field(
        (0.5, 0.5), description="Beta prior of the predictive bounds and of the joint rule (Jeffreys)"
    )
    zero_event: Literal["relevant", "always", "never"] = Field(
        "relevant",
        description="when a zero count must be settled as C_K = 0 before a step stops: relevant (a later label "
        "depends on it), always (hard labels too), never",
    )
    denominator: Literal["joint", "guard"] = Field(
        "joint",
        description="joint: a step's label is settled on its own and its previous step's count, sampling the "
        "previous step again while needed; guard: the previous value is final, each step guards its next one",
    )
    denominator_guard: float | None = Field(
        0.2, ge=0, le=1,
        description="denominator=guard: max P(a neutral next step gets another RPE label than with the fixed-K "
        "denominator); None: off",
    )

    @model_validator(mode="after")
    def _check_prior(self) -> AdaptiveConfig:
        if min(self.prior) <= 0:
            raise ValueError(f"prior Beta parameters must be > 0, got {self.prior}")
        if self.denominator == "joint" and self.bound != "predictive":
            raise ValueError(f"bound {self.bound!r} needs denominator: guard (the joint rule is a predictive one)")
        return self


class MonteCarloConfig(Section):
    """Part 2: Monte-Carlo values of every step prefix."""

    engine: EngineConfig
    k_thresholds: list[tuple[float, int]] = Field(
        default_factory=lambda: list(DEFAULT_K_THRESHOLDS),
        description="(upper_bound, K) pairs, ascending: K of the first pair with MC(s_1) < upper_bound; "
        "the last pair also applies at MC(s_1) == its bound",
    )
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(128, ge=1)
    seed: int = 0
    shard_size: int = Field(50, ge=1, description="problems per shard (all solutions of a problem together)")
    max_requests_per_call: int = Field(4096, ge=1, description="a wave larger than this is split into several calls")
    adaptive: AdaptiveConfig = Field(default_factory=AdaptiveConfig)

    @model_validator(mode="after")
    def _check(self) -> MonteCarloConfig:
        from genprm.labeling.montecarlo import check_k_thresholds

        check_k_thresholds(self.k_thresholds)
        return self


class GateBounds(Section):
    """Bounds of the label-balance check (share of 1-labels of the training label)."""

    min_positive_share: float = Field(0.05, ge=0, le=1)
    max_positive_share: float = Field(0.95, ge=0, le=1)


class LabelsConfig(Section):
    """Part 3: step labels from stored MC values, and the quality gate."""

    epsilon: float = Field(0.8, gt=0, description="RPE: label 1 iff MC(s_t,a_t) / MC(s_t) >= epsilon")
    difference_threshold: float = Field(-0.3, le=0, description="difference: label 1 iff MC(s_t,a_t) - MC(s_t) >= it")
    training_label: str = Field("rpe", description="which label name the SFT stage uses")
    gate: GateBounds = Field(default_factory=GateBounds)

    @model_validator(mode="after")
    def _check(self) -> LabelsConfig:
        from genprm.labeling.labels import label_names

        names = label_names(self.epsilon, self.difference_threshold)
        if self.training_label not in names:
            raise ValueError(f"training_label {self.training_label!r} is not one of {names}")
        return self


S = TypeVar("S", bound=Section)


def _top_seed(path: str | os.PathLike, data: dict) -> int:
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{path}: seed: must be an integer, got {seed!r}")
    return seed


def load_section(path: str | os.PathLike, key: str, cls: type[S], *, optional: bool = False) -> S:
    """Validate section ``key`` of a params file; errors name the file and the dotted key.

    ``optional``: a missing section gives the section's defaults instead of an error.
    The file's top-level ``seed`` shifts the section's seeds, as in a whole profile
    (:func:`genprm.config.derive_seeds`).
    """
    data = load_yaml(path)
    if key not in data:
        if optional:
            return cls()
        raise ConfigError(f"{path}: section '{key}' is missing")
    try:
        return derive_seeds(cls.model_validate(data[key]), _top_seed(path, data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in (key, *err["loc"]))
            lines.append(f"{path}: {loc}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}")
        raise ConfigError("\n".join(lines)) from None
