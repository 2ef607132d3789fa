"""Build a run's training problems and evaluation sets from configured sources.

Sources are either the embedded world (generated from a seed) or a named loader reading a
local path or Hub id (:mod:`genprm.data`). Training problems whose normalised text appears in
any evaluation set are removed and counted (decontamination), as are duplicates within the
training set. :func:`prepare` returns everything in memory; the ``prepare`` stage writes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from genprm.records import ProcessBenchSample, Problem
from genprm.world.problems import WorldConfig, generate_problems

__all__ = ["PreparedData", "load_source", "prepare"]

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    train: list[Problem]
    eval: dict[str, list[Problem] | list[ProcessBenchSample]]
    stats: dict[str, Any] = field(default_factory=dict)
    removed_ids: dict[str, Any] = field(default_factory=dict)
    """Ids of the training problems decontamination removed (kept out of the metrics file)."""


def load_source(
    name: str,
    *,
    source: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    world: WorldConfig | None = None,
    shape: dict[str, Any] | None = None,
    prefix: str = "world",
) -> list[Problem] | list[ProcessBenchSample]:
    """Problems (or ProcessBench samples) of one source; ``shape`` changes ``world`` for this source only."""
    if name == "world":
        if n is None or seed is None:
            raise ValueError("a 'world' source needs n and seed")
        return generate_problems(n, seed, (world or WorldConfig()).reshaped(shape), prefix=prefix)
    from genprm import data

    if name == "processbench":
        splits = None if split is None else [s.strip() for s in split.split(",")]
        return data.load_processbench(source, splits=splits, limit=limit)
    return data.load_problems(name, source, split=split, limit=limit)


def prepare(
    train_sources: list[dict[str, Any]],
    eval_sources: dict[str, dict[str, Any]],
    *,
    world: WorldConfig | None = None,
    decontaminate: bool = True,
) -> PreparedData:
    """Load every source, then decontaminate the training problems against all evaluation sets.

    Each source is a mapping of :func:`load_source` keyword arguments (``name`` required).
    """
    from genprm.data import decontaminate as decon

    evals: dict[str, Any] = {}
    for key, spec in eval_sources.items():
        evals[key] = load_source(**spec, world=world, prefix=key)
        log.info("eval set %s: %d rows from %s", key, len(evals[key]), spec["name"])
    train: list[Problem] = []
    per_source: dict[str, int] = {}
    for spec in train_sources:
        rows = load_source(**spec, world=world, prefix="world")
        label = spec["name"] if spec.get("source") is None else f"{spec['name']}:{spec['source']}"
        per_source[label] = per_source.get(label, 0) + len(rows)
        train.extend(rows)
        log.info("train source %s: %d problems", label, len(rows))
    loaded = len(train)
    removed: dict[str, Any] = {}
    if decontaminate:
        train, removed = decon(train, evals)
    ids = {k: removed.pop(k) for k in ("removed_ids", "duplicate_ids") if k in removed}
    stats = {
        "train": {"loaded": loaded, "kept": len(train), "per_source": per_source},
        "eval": {key: len(rows) for key, rows in evals.items()},
        "decontamination": removed,
    }
    return PreparedData(train=train, eval=evals, stats=stats, removed_ids=ids)
