"""Typed, validated configuration: one pydantic model per ``params.yaml`` section.

``params.yaml`` is the embedded default profile; ``configs/*.yaml`` hold other profiles.
This module holds the base (:class:`Section`, :class:`ConfigError`) and the sections of the
early stages; :mod:`genprm.params` assembles every section into one profile. An unknown key
or a wrong type raises :class:`ConfigError` naming the file and the dotted key, e.g.
``params.yaml: prepare.train.0.n: Input should be a valid integer``.

The library never reads ``params.yaml`` itself: stages load it here and pass plain values on.
"""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genprm.world.problems import WorldConfig

__all__ = [
    "ConfigError",
    "Section",
    "SourceConfig",
    "PrepareConfig",
    "EngineConfig",
    "Demonstration",
    "PolicyPrompt",
    "policy_messages",
    "SamplingConfig",
    "PolicyEvalConfig",
    "WorldBenchConfig",
    "describe_error",
    "load_yaml",
    "SEED_STRIDE",
    "derive_seeds",
]


class ConfigError(ValueError):
    """A configuration file does not fit its schema. The message names file and key."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class SourceConfig(Section):
    """One data source: the embedded world, or a named loader reading a local path or Hub id."""

    name: str = Field(description="'world' or a loader name (math, math500, aime24, amc23, minerva_math, processbench)")
    source: str | None = Field(None, description="local file/folder or Hub id; default: the loader's Hub id")
    split: str | None = Field(None, description="split to read where the source has several")
    limit: int | None = Field(None, ge=1, description="keep the first N rows")
    n: int | None = Field(None, ge=1, description="world only: how many problems to generate")
    seed: int | None = Field(None, description="world only: generator seed")
    shape: dict[str, Any] | None = Field(
        None, description="world only: this source's changes to the `world` section, e.g. {min_ops: 4, max_ops: 4}"
    )

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.name == "world":
            if self.n is None or self.seed is None:
                raise ValueError("a 'world' source needs 'n' and 'seed'")
            if self.source is not None:
                raise ValueError("a 'world' source takes no 'source'")
            if self.shape is not None:
                unknown = sorted(set(self.shape) - set(WorldConfig.model_fields))
                if unknown:
                    raise ValueError(f"shape: unknown key(s) {unknown} (known: {sorted(WorldConfig.model_fields)})")
        elif self.n is not None or self.seed is not None or self.shape is not None:
            raise ValueError(f"'n', 'seed' and 'shape' apply to 'world' sources only, not '{self.name}'")
        return self


class PrepareConfig(Section):
    """The ``prepare`` stage: training problems and evaluation sets."""

    train: list[SourceConfig] = Field(min_length=1)
    eval: dict[str, SourceConfig] = Field(default_factory=dict)
    decontaminate: bool = Field(True, description="drop training problems that appear in any evaluation set")


class EngineConfig(Section):
    """Which generation backend a stage uses and its settings (see :mod:`genprm.engine.settings`).

    ``settings`` are checked against the backend's settings model when the profile loads; the
    model path is given by the stage (``model`` may still be set here to override it).
    """

    backend: str = "vllm"
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> EngineConfig:
        from genprm.engine import settings_model

        model = settings_model(self.backend)  # unknown backend: error lists the known ones
        stage_model = {"model": "<given by the stage>"} if "model" in model.model_fields else {}
        model.model_validate({**stage_model, **self.settings})
        return self

    def resolved_settings(self, model: str | os.PathLike | None = None) -> dict[str, Any]:
        """The settings with ``model`` (the stage's default) filled in when the backend takes one
        and ``settings.model`` does not name one."""
        from genprm.engine import settings_model

        settings = dict(self.settings)
        if "model" in settings_model(self.backend).model_fields and "model" not in settings:
            if model is None:
                raise ValueError(f"the {self.backend!r} engine needs a model: pass one or set engine.settings.model")
            settings["model"] = str(model)
        return settings

    def create(self, model: str | os.PathLike | None = None):
        """The generator, with ``model`` (the stage's default) unless ``settings.model`` names one."""
        from genprm.engine import create_generator

        return create_generator(self.backend, **self.resolved_settings(model))


class Demonstration(Section):
    """One worked example shown to the policy before the problem: a user turn and its step-forced answer."""

    problem: str = Field(min_length=1)
    steps: list[str] = Field(min_length=1, description="the answer's steps, rendered 'Step 1: ...\\nStep 2: ...'")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[str]) -> list[str]:
        from genprm.steps import format_steps, parse_steps

        if parse_steps(format_steps(steps)) != steps:
            raise ValueError("steps must be stripped, non-empty, without lines of their own starting 'Step <n>:'")
        return steps


class PolicyPrompt(Section):
    """What the policy sees before the problem: an optional system turn and worked examples as chat turns.

    Empty (the default) gives the bare ``[user: problem]`` conversation. Every stage that samples
    the policy (rollout, Monte-Carlo completions, benchmarks, Best-of-N, critic) uses the same
    prompt, so MC values are estimated in the context the solutions were written in. The
    GenPRM never sees it: it verifies the problem and the steps alone.
    """

    system: str | None = Field(None, description="a system turn, or none")
    demonstrations: list[Demonstration] = Field(default_factory=list, description="few-shot chat turns, in order")

    def messages(self, problem: str) -> list[dict[str, str]]:
        """The chat messages that ask the policy to solve ``problem``."""
        from genprm.steps import format_steps

        out = [{"role": "system", "content": self.system}] if self.system else []
        for demo in self.demonstrations:
            out += [{"role": "user", "content": demo.problem},
                    {"role": "assistant", "content": format_steps(demo.steps)}]
        return out + [{"role": "user", "content": problem}]


def policy_messages(problem: str, prompt: PolicyPrompt | None = None) -> list[dict[str, str]]:
    """The policy's chat messages for ``problem``: ``prompt``'s turns first, the bare problem without one."""
    return (prompt if prompt is not None else PolicyPrompt()).messages(problem)


class SamplingConfig(Section):
    """How the policy samples solutions (rollouts, benchmarks, Best-of-N) and what it is shown (``prompt``)."""

    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int = Field(128, ge=1)
    prompt: PolicyPrompt = Field(default_factory=PolicyPrompt, description="the policy's prompt in every stage")


class PolicyEvalConfig(Section):
    """How the ``policy`` stage measures the trained policy."""

    problems: int = Field(200, ge=1, description="held-out world problems to sample")
    samples: int = Field(1, ge=1, description="solutions per problem")
    engine: EngineConfig = Field(default_factory=EngineConfig)


class WorldBenchConfig(Section):
    """The ``world_bench`` stage: the world's ProcessBench from policy solutions."""

    samples_per_problem: int = Field(4, ge=1, description="policy solutions sampled per held-out problem")
    size: int = Field(200, ge=2, description="benchmark size, half erroneous and half correct")
    seed: int = 0
    engine: EngineConfig = Field(default_factory=EngineConfig)


SEED_STRIDE = 1000


def derive_seeds(section: BaseModel, seed: int) -> BaseModel:
    """Shift every ``seed`` inside ``section`` (nested sections and lists too) by ``seed * SEED_STRIDE``.

    The profile's top-level ``seed`` is the one knob a seed sweep turns: each stage keeps its own
    ``seed`` (so stages draw independent streams) and adds the top-level one, scaled so that two
    sweep seeds never give one stage the same stream. ``seed: 0`` leaves every value as written.
    Changes ``section`` in place and returns it.
    """
    if not seed:
        return section

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                field = getattr(value, name)
                if name == "seed" and isinstance(field, int) and not isinstance(field, bool):
                    object.__setattr__(value, name, field + seed * SEED_STRIDE)
                else:
                    walk(field)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(section)
    return section


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def describe_error(exc: ValidationError, model: type[BaseModel], path: Path) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            owner = _owner(model, err["loc"][:-1])
            if owner is not None:
                close = difflib.get_close_matches(str(err["loc"][-1]), list(owner.model_fields), n=1)
                msg += f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(owner.model_fields)})"
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def _owner(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (best effort, for suggestions)."""
    cur: Any = model
    skip = 0  # container levels (list index, dict key) still to pass over
    for part in loc:
        if skip:
            skip -= 1
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        cur, skip = _unwrap(cur.model_fields[part].annotation)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _unwrap(annotation: Any) -> tuple[Any, int]:
    """``list[X]`` / ``dict[str, X]`` / ``X | None`` -> (X, container levels)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, dict):
        inner, depth = _unwrap(args[-1])
        return inner, depth + 1
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return (models[0] if models else annotation), 0
