"""Sharded, resumable runs of the labeling stages, as ``stages/*.py`` call them.

Each function reads its inputs, runs the missing shards (see :mod:`genprm.labeling.shards`),
merges them into the output file when asked, and returns the stage's metrics. The generator is
created only when a shard needs it (a resumed run whose shards are all done loads no model)
from ``cfg.engine`` and ``model`` (the model folder; ``engine.settings.model`` wins); pass
``generator`` to reuse one that is already loaded (it must match that engine and model).

- :func:`rollout_stage`:     problems (.jsonl)               -> solutions (.jsonl)
- :func:`montecarlo_stage`:  problems + solutions            -> step values (.jsonl)
- :func:`labels_stage`:      step values + solutions         -> labeled values (.jsonl), gate, quality

Shards: rollout shards are blocks of ``shard_size`` problems; Monte-Carlo shards are blocks of
``shard_size`` problems too (all solutions of a problem together, in input order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig
from genprm.labeling.shards import fingerprint, folder_stamp, merge_shards, run_shards, sum_stats
from genprm.records import Problem, Solution, StepValues, read_records, write_records

__all__ = ["rollout_stage", "montecarlo_stage", "labels_stage"]

log = logging.getLogger(__name__)


class _LazyGenerator:
    def __init__(self, factory: Callable[[], Any], given: Any = None) -> None:
        self.factory, self.gen, self.owned = factory, given, False

    def get(self) -> Any:
        if self.gen is None:
            self.gen, self.owned = self.factory(), True
        return self.gen

    def close(self) -> None:
        if self.owned and self.gen is not None:
            self.gen.close()


def _factory(cfg: RolloutConfig | MonteCarloConfig, model: str | Path | None) -> Callable[[], Any]:
    return lambda: cfg.engine.create(model)


def _identity(stage: str, cfg: RolloutConfig | MonteCarloConfig, model: str | Path | None) -> dict:
    """What a stage's shards depend on: the config, the model and the model folder's content."""
    settings = cfg.engine.resolved_settings(model)
    return {"stage": stage, **cfg.model_dump(mode="json"), "settings": settings,
            "model_stamp": folder_stamp(settings["model"])}


def rollout_stage(
    problems_path: str | Path,
    cfg: RolloutConfig,
    out_path: str | Path,
    shard_dir: str | Path,
    *,
    model: str | Path | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    merge: bool = True,
    run: bool = True,
    generator: Any = None,
) -> dict:
    """Part 1 over ``problems_path`` (the first ``cfg.n_problems``); returns metrics (``run`` / ``merge`` as in :func:`rollout_stage`)."""
    from genprm.labeling.rollout import run_rollouts

    t0 = time.perf_counter()
    problems = read_records(problems_path, Problem)[: cfg.n_problems]
    fp = fingerprint(_identity("rollout", cfg, model), problems_path)
    lazy = _LazyGenerator(_factory(cfg, model), generator)

    def work(shard: int, items: range) -> tuple[list[Solution], dict]:
        res = run_rollouts(
            lazy.get(), problems[items.start : items.stop], paths_per_round=cfg.paths_per_round,
            max_paths=cfg.max_paths, keep_correct=cfg.keep_correct, keep_incorrect=cfg.keep_incorrect,
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
        )
        return res.solutions, {**res.stats, "dropped_ids": res.dropped}

    shards: dict[str, Any] = {"skipped": True}
    try:
        if run:
            shards = run_shards(shard_dir, "rollout", len(problems), cfg.shard_size, work, fingerprint=fp,
                                shard_index=shard_index, num_shards=num_shards)
    finally:
        lazy.close()
    metrics: dict[str, Any] = {"shards": shards}
    if merge:
        records, stats = merge_shards(shard_dir, "rollout", len(problems), cfg.shard_size, Solution)
        write_records(out_path, records)
        total = sum_stats(stats)
        total.pop("dropped_ids", None)
        metrics.update(total)
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


def _groups(solutions: list[Solution]) -> list[list[Solution]]:
    """Solutions grouped by problem, in order of first appearance."""
    order: dict[str, list[Solution]] = {}
    for s in solutions:
        order.setdefault(s.problem_id, []).append(s)
    return list(order.values())


def montecarlo_stage(
    problems_path: str | Path,
    solutions_path: str | Path,
    cfg: MonteCarloConfig,
    out_path: str | Path,
    shard_dir: str | Path,
    *,
    model: str | Path | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    merge: bool = True,
    run: bool = True,
    generator: Any = None,
) -> dict:
    """Part 2 for every solution of ``solutions_path``; returns metrics (``run`` / ``merge`` as in :func:`rollout_stage`)."""
    from genprm.labeling.montecarlo import estimate_values

    t0 = time.perf_counter()
    problems = read_records(problems_path, Problem)
    groups = _groups(read_records(solutions_path, Solution))
    fp = fingerprint(_identity("montecarlo", cfg, model), problems_path, solutions_path)
    lazy = _LazyGenerator(_factory(cfg, model), generator)

    def work(shard: int, items: range) -> tuple[list[StepValues], dict]:
        sols = [s for g in groups[items.start : items.stop] for s in g]
        needed = {s.problem_id for s in sols}
        return estimate_values(
            lazy.get(), [p for p in problems if p.id in needed], sols, k_thresholds=cfg.k_thresholds,
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
            max_requests_per_call=cfg.max_requests_per_call, adaptive=cfg.adaptive,
        )

    shards: dict[str, Any] = {"skipped": True}
    try:
        if run:
            shards = run_shards(shard_dir, "montecarlo", len(groups), cfg.shard_size, work, fingerprint=fp,
                                shard_index=shard_index, num_shards=num_shards)
    finally:
        lazy.close()
    metrics: dict[str, Any] = {"shards": shards}
    if merge:
        records, stats = merge_shards(shard_dir, "montecarlo", len(groups), cfg.shard_size, StepValues)
        write_records(out_path, records)
        metrics.update(sum_stats(stats))
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


def labels_stage(
    values_path: str | Path,
    solutions_path: str | Path,
    cfg: LabelsConfig,
    out_path: str | Path,
    *,
    gate: bool = True,
) -> dict:
    """Part 3: label stored values, run the quality gate, score against the world's checker.

    The gate runs before the output is written, so a failing gate (``GateError``) leaves no
    output. Quality metrics are computed when every problem is a world problem.
    """
    from genprm.labeling.gate import run_gate
    from genprm.labeling.labels import apply_labels, label_names, quality_metrics
    from genprm.world.problems import WorldFormatError

    t0 = time.perf_counter()
    values = apply_labels(read_records(values_path, StepValues), epsilon=cfg.epsilon,
                          difference_threshold=cfg.difference_threshold)
    solutions = read_records(solutions_path, Solution)
    names = label_names(cfg.epsilon, cfg.difference_threshold)
    metrics: dict[str, Any] = {"solutions": len(values), "steps": sum(len(v.mc) for v in values)}
    metrics["positive_share"] = {
        n: round(sum(sum(v.labels[n]) for v in values) / max(1, metrics["steps"]), 4) for n in names
    }
    if gate:
        metrics["gate"] = run_gate(values, solutions, label_names=names, training_label=cfg.training_label,
                                   min_positive_share=cfg.gate.min_positive_share,
                                   max_positive_share=cfg.gate.max_positive_share)
    try:
        metrics["quality"] = quality_metrics(values, solutions)
    except WorldFormatError:
        log.info("not world problems: no exact step labels, quality metrics skipped")
    write_records(out_path, values)
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics
