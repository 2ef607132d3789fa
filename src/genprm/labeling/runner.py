"""Sharded, resumable runs of the labeling stages, as ``stages/*.py`` call them.

Each function reads its inputs, runs the missing shards (see :mod:`genprm.labeling.shards`),
merges them into the output file when asked, and returns the stage's metrics. The generator is
created only when a shard needs it (a resumed run whose shards are all done loads no model)
from ``cfg.engine`` and ``model`` (the model folder; ``engine.settings.model`` wins); pass
``generator`` to reuse one that is already loaded (it must match that engine and model), and
``prompt`` (the ``sampling.prompt`` section) for the policy's system turn and worked examples.

- :func:`rollout_stage`:     problems (.jsonl)               -> solutions (.jsonl)
- :func:`montecarlo_stage`:  problems + solutions            -> step values (.jsonl)
- :func:`labels_stage`:      step values + solutions         -> labeled values (.jsonl), gate, quality

Shards: rollout shards are blocks of ``shard_size`` problems; Monte-Carlo shards are blocks of
``shard_size`` problems too (all solutions of a problem together, in input order).

When a stage has nothing to write, or its gate fails, it raises a
:class:`genprm.quality.StageFailure` that carries the stage's metrics (the stage script writes them,
then exits non-zero); the data output is then not written and one left from an earlier run is
removed, as ``dvc repro`` does before it runs a stage:

- :func:`rollout_stage` raises :class:`~genprm.quality.StageOutputError` when it kept no solution
  (the message gives the counts by cause and the knobs: ``rollout.one_sided``, ``max_paths``,
  ``n_problems``);
- :func:`montecarlo_stage` and :func:`labels_stage` raise it when there are no values;
- :func:`labels_stage` raises :class:`~genprm.quality.GateError` when the gate fails, after writing
  the labelled values to a side file, ``<out stem>.gate-failed.jsonl`` (``failed_gate_path``), for
  inspection; the metrics' ``gate`` section holds each failed expectation and its rejected rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genprm.config import PolicyPrompt
from genprm.kernels import active_kernel_env
from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig
from genprm.labeling.shards import fingerprint, folder_stamp, merge_shards, run_shards, sum_stats
from genprm.quality import GateError, StageOutputError
from genprm.records import Problem, Solution, StepValues, read_records, write_records

__all__ = ["rollout_stage", "montecarlo_stage", "labels_stage", "failed_gate_path"]

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


def _identity(stage: str, cfg: RolloutConfig | MonteCarloConfig, model: str | Path | None,
              prompt: PolicyPrompt | None) -> dict:
    """What a stage's shards depend on: the config, the policy's prompt, the CPU kernel variables, the model and
    the model folder's content."""
    settings = cfg.engine.resolved_settings(model)
    shown = {"prompt": prompt.model_dump(mode="json")} if prompt is not None and prompt != PolicyPrompt() else {}
    # shards made under another CPU kernel path (genprm.kernels) are not reused; none set: native, as before
    kernels = {"kernels": active} if (active := active_kernel_env()) else {}
    return {"stage": stage, **cfg.model_dump(mode="json"), **shown, **kernels, "settings": settings,
            "model_stamp": folder_stamp(settings["model"])}


def _nothing_to_write(out_path: str | Path, metrics: dict, t0: float, message: str) -> StageOutputError:
    """The error of a stage with no output: its metrics timed, a stale output from an earlier run removed."""
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    Path(out_path).unlink(missing_ok=True)
    return StageOutputError(message, metrics)


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
    prompt: PolicyPrompt | None = None,
) -> dict:
    """Part 1 over ``problems_path`` (the first ``cfg.n_problems``); returns metrics (``run`` / ``merge`` as in :func:`rollout_stage`)."""
    from genprm.labeling.rollout import run_rollouts

    t0 = time.perf_counter()
    problems = read_records(problems_path, Problem)[: cfg.n_problems]
    fp = fingerprint(_identity("rollout", cfg, model, prompt), problems_path)
    lazy = _LazyGenerator(_factory(cfg, model), generator)

    def work(shard: int, items: range) -> tuple[list[Solution], dict]:
        res = run_rollouts(
            lazy.get(), problems[items.start : items.stop], paths_per_round=cfg.paths_per_round,
            max_paths=cfg.max_paths, keep_correct=cfg.keep_correct, keep_incorrect=cfg.keep_incorrect,
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
            one_sided=cfg.one_sided, prompt=prompt,
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
        total = sum_stats(stats)
        total.pop("dropped_ids", None)
        metrics.update(total)
        if not records:
            raise _nothing_to_write(out_path, metrics, t0, _empty_rollout_message(problems_path, cfg, metrics))
        write_records(out_path, records)
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


def _empty_rollout_message(problems_path: str | Path, cfg: RolloutConfig, m: dict) -> str:
    if not m.get("problems"):
        return (f"rollout has no problems to sample: {problems_path} is empty. Run the `prepare` stage "
                f"(dvc repro prepare) and check its sources.")
    return (
        f"rollout kept 0 solutions from {m['problems']} problems, so later stages have nothing to label: "
        f"{m.get('no_correct_problems', 0)} problem(s) never got a correct path and "
        f"{m.get('no_incorrect_problems', 0)} never got an incorrect path within rollout.max_paths={cfg.max_paths} "
        f"paths each, and rollout.one_sided is {cfg.one_sided!r} ({m.get('dropped_problems', 0)} dropped). "
        f"The policy rarely or never solves these problems. Set `rollout.one_sided: keep` to keep one-sided "
        f"problems, raise `rollout.max_paths` (more tries per problem) or `rollout.n_problems` (more problems, "
        f"now {cfg.n_problems if cfg.n_problems is not None else 'all'}), or use an easier dataset or a stronger "
        f"policy."
    )


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
    prompt: PolicyPrompt | None = None,
) -> dict:
    """Part 2 for every solution of ``solutions_path``; returns metrics (``run`` / ``merge`` as in :func:`rollout_stage`)."""
    from genprm.labeling.montecarlo import estimate_values

    t0 = time.perf_counter()
    problems = read_records(problems_path, Problem)
    groups = _groups(read_records(solutions_path, Solution))
    fp = fingerprint(_identity("montecarlo", cfg, model, prompt), problems_path, solutions_path)
    lazy = _LazyGenerator(_factory(cfg, model), generator)

    def work(shard: int, items: range) -> tuple[list[StepValues], dict]:
        sols = [s for g in groups[items.start : items.stop] for s in g]
        needed = {s.problem_id for s in sols}
        return estimate_values(
            lazy.get(), [p for p in problems if p.id in needed], sols, k_thresholds=cfg.k_thresholds,
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
            max_requests_per_call=cfg.max_requests_per_call, adaptive=cfg.adaptive, prompt=prompt,
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
        metrics.update(sum_stats(stats))
        if not records:
            raise _nothing_to_write(
                out_path, metrics, t0,
                f"montecarlo has no step values to write: {solutions_path} holds no solutions. The rollout "
                f"kept none (see its metrics: no_correct_problems, no_incorrect_problems); set "
                f"`rollout.one_sided: keep`, raise `rollout.max_paths` or `rollout.n_problems`, or use an easier "
                f"dataset or a stronger policy, then run `rollout` again.",
            )
        write_records(out_path, records)
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


def failed_gate_path(out_path: str | Path) -> Path:
    """Where :func:`labels_stage` writes the labelled values when the gate fails: ``<stem>.gate-failed<suffix>``."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.gate-failed{out.suffix}")


def labels_stage(
    values_path: str | Path,
    solutions_path: str | Path,
    cfg: LabelsConfig,
    out_path: str | Path,
    *,
    gate: bool = True,
) -> dict:
    """Part 3: label stored values, run the quality gate, score against the world's checker.

    The gate runs before the output is written. A failing gate raises :class:`GateError`
    carrying the metrics (with the gate's report) after the labelled values are written to
    :func:`failed_gate_path`, not to ``out_path``; no values at all raise
    :class:`StageOutputError`. Quality metrics are computed when every problem is a world problem.
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
    side = failed_gate_path(out_path)
    if not values:
        raise _nothing_to_write(
            out_path, metrics, t0,
            f"labels has no step values to label: {values_path} is empty ({len(solutions)} solutions in "
            f"{solutions_path}). When the rollout kept no solution there is nothing to value: set "
            f"`rollout.one_sided: keep`, raise `rollout.max_paths` or `rollout.n_problems`, or use an easier dataset "
            f"or a stronger policy, then run `rollout` and `montecarlo` again.",
        )
    metrics["positive_share"] = {
        n: round(sum(sum(v.labels[n]) for v in values) / max(1, metrics["steps"]), 4) for n in names
    }
    failed: GateError | None = None
    if gate:
        try:
            metrics["gate"] = run_gate(values, solutions, label_names=names, training_label=cfg.training_label,
                                       min_positive_share=cfg.gate.min_positive_share,
                                       max_positive_share=cfg.gate.max_positive_share)
        except GateError as exc:
            metrics["gate"] = exc.summary
            failed = exc
    try:
        metrics["quality"] = quality_metrics(values, solutions)
    except WorldFormatError:
        log.info("not world problems: no exact step labels, quality metrics skipped")
    if failed is not None:
        write_records(side, values)
        Path(out_path).unlink(missing_ok=True)
        metrics["gate_failed_output"] = str(side)
        metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
        failed.metrics = metrics
        raise failed
    write_records(out_path, values)
    side.unlink(missing_ok=True)
    metrics["stage_seconds"] = round(time.perf_counter() - t0, 3)
    return metrics
