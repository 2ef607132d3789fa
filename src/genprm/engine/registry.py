"""The registry of generation backends and :func:`create_generator`.

A backend is a name, a settings model (validated before anything heavy is imported) and the
dotted path of its class (imported only when a generator is created)::

    from genprm.engine import create_generator
    gen = create_generator("hf", model="path/to/model", dtype="float32")

Unknown backend names and unknown settings keys raise ``ValueError`` naming the offender, the
known names and the closest match.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from genprm.engine.base import Generator
from genprm.engine.settings import BackendSettings, HfSettings, OpenAISettings, VllmSettings, WorldTeacherSettings

__all__ = ["register_backend", "create_generator", "backend_names", "settings_model"]


@dataclass(frozen=True)
class _Backend:
    settings: type[BackendSettings]
    target: str  # "module:Class"; the class takes the validated settings


_REGISTRY: dict[str, _Backend] = {}


def register_backend(name: str, settings: type[BackendSettings], target: str) -> None:
    """Register ``target`` ("package.module:Class", built as ``Class(settings)``) under ``name``."""
    if ":" not in target:
        raise ValueError(f"backend target must look like 'module:Class', got {target!r}")
    _REGISTRY[name] = _Backend(settings, target)


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def settings_model(backend: str) -> type[BackendSettings]:
    """The settings class of ``backend`` (``ValueError`` for unknown names)."""
    if backend not in _REGISTRY:
        known = backend_names()
        raise ValueError(f"unknown generation backend {backend!r}; known: {', '.join(known)}{_closest(backend, known)}")
    return _REGISTRY[backend].settings


def validate_settings(backend: str, settings: dict[str, Any]) -> BackendSettings:
    """Validate ``settings`` for ``backend``; errors name the key."""
    cls = settings_model(backend)
    try:
        return cls(**settings)
    except ValidationError as exc:
        fields = sorted(cls.model_fields)
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "<settings>"
            hint = ""
            if err["type"] == "extra_forbidden":
                hint = f" (known: {', '.join(fields)}){_closest(str(err['loc'][0]), fields)}"
            lines.append(f"  {key}: {err['msg']}{hint}")
        raise ValueError(f"invalid settings for generation backend {backend!r}:\n" + "\n".join(lines)) from None


def create_generator(backend: str, **settings: Any) -> Generator:
    """Validate ``settings`` and build the ``backend`` generator (this loads the model)."""
    validated = validate_settings(backend, settings)
    module_name, cls_name = _REGISTRY[backend].target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(validated)


register_backend("vllm", VllmSettings, "genprm.engine.vllm_backend:VllmGenerator")
register_backend("hf", HfSettings, "genprm.engine.hf_backend:HfGenerator")
register_backend("openai", OpenAISettings, "genprm.engine.openai_backend:OpenAIGenerator")
register_backend("world-teacher", WorldTeacherSettings, "genprm.world.teacher:WorldTeacher")
