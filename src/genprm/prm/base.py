"""The :class:`PRM` protocol, input checks shared by every kind, and the registry of kinds."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["PRM", "check_inputs", "create_prm", "prm_kinds"]


@runtime_checkable
class PRM(Protocol):
    """Anything that gives each step of each solution a reward in [0, 1] (P(step is correct))."""

    def score(self, problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]: ...


def check_inputs(problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> None:
    """Raise ``ValueError`` naming the offending solution for mismatched or empty input."""
    if len(problems) != len(solutions):
        raise ValueError(f"{len(problems)} problems but {len(solutions)} solutions")
    for i, (p, steps) in enumerate(zip(problems, solutions)):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"solution {i}: the problem is empty or not text")
        if isinstance(steps, str) or not steps:
            raise ValueError(f"solution {i}: steps must be a non-empty list of strings")
        for j, s in enumerate(steps):
            if not isinstance(s, str):
                raise ValueError(f"solution {i}, step {j}: not text ({type(s).__name__})")


_KINDS: dict[str, str] = {
    "genprm": "genprm.verifier:GenPRMVerifier",
    "direct": "genprm.prm.direct:DirectPRM",
    "discriminative": "genprm.prm.discriminative:DiscriminativePRM",
}


def prm_kinds() -> list[str]:
    return sorted(_KINDS)


def create_prm(kind: str, **kwargs: Any) -> PRM:
    """Build the PRM of ``kind`` with ``kwargs`` (the class's constructor arguments)."""
    if kind not in _KINDS:
        match = difflib.get_close_matches(kind, list(_KINDS), n=1, cutoff=0.0)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        raise ValueError(f"unknown PRM kind {kind!r}; known: {', '.join(prm_kinds())}{hint}")
    module, cls = _KINDS[kind].split(":")
    try:
        return getattr(importlib.import_module(module), cls)(**kwargs)
    except TypeError as exc:
        raise ValueError(f"PRM kind {kind!r}: bad arguments {sorted(kwargs)}: {exc}") from None
