"""ProcessBench evaluation: earliest-error predictions from step rewards, and the official metric.

A prediction is the index of the first step whose reward is below ``threshold`` (0-based), or
-1 when no step is. Per split (as QwenLM/ProcessBench ``code/run_eval.py`` computes it, in
percent): ``error_acc`` = share of samples with ``label != -1`` whose prediction equals the label,
``correct_acc`` = the same on samples with ``label == -1``, ``f1 = 2*ae*ac/(ae+ac)`` (0 when both
are 0, where the official script would divide by zero). The headline ``average_f1`` is the plain
mean of the split F1s. A missing prediction (``None``) never matches, as in the official code.
Samples that know the kind of their first error (``error_kind``, the world's benchmark) add
``error_acc_by_kind``: ``error_acc`` and ``n`` per kind, over all splits::

    preds = [predict_first_error(r, 0.5) for r in rewards]
    metrics = processbench_metrics(samples, preds)       # {"splits": {...}, "average_f1": ...}
    write_predictions("preds.jsonl", samples, preds, rewards); write_json("metrics.json", metrics)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from genprm.records import ProcessBenchSample, write_json, write_records

__all__ = [
    "predict_first_error",
    "split_metrics",
    "processbench_metrics",
    "prediction_rows",
    "write_predictions",
    "write_metrics",
]


def predict_first_error(step_rewards: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step with reward < ``threshold``; -1 when none. Rewards must be finite."""
    for i, r in enumerate(step_rewards):
        if not isinstance(r, (int, float)) or math.isnan(r):
            raise ValueError(f"step {i}: reward {r!r} is not a number")
        if r < threshold:
            return i
    return -1


def split_metrics(labels: Sequence[int], predictions: Sequence[int | None]) -> dict[str, float | int]:
    """error_acc, correct_acc (percent), f1 and the sample counts of one split."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    error = [p == lab for lab, p in zip(labels, predictions) if lab != -1]
    correct = [p == lab for lab, p in zip(labels, predictions) if lab == -1]
    ae = 100.0 * sum(error) / len(error) if error else 0.0
    ac = 100.0 * sum(correct) / len(correct) if correct else 0.0
    f1 = 2 * ae * ac / (ae + ac) if ae + ac > 0 else 0.0
    return {
        "error_acc": ae,
        "correct_acc": ac,
        "f1": f1,
        "n_error": len(error),
        "n_correct": len(correct),
        "n": len(labels),
    }


def processbench_metrics(samples: Sequence[ProcessBenchSample], predictions: Sequence[int | None]) -> dict[str, Any]:
    """Per-split metrics (splits in order of first appearance) and the mean of their F1s."""
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    if not samples:
        raise ValueError("no samples to evaluate")
    by_split: dict[str, tuple[list[int], list[int | None]]] = {}
    for s, p in zip(samples, predictions):
        if p is not None and not -1 <= p < len(s.steps):
            raise ValueError(f"sample {s.id}: prediction {p} outside -1..{len(s.steps) - 1}")
        labels, preds = by_split.setdefault(s.split or "all", ([], []))
        labels.append(s.label)
        preds.append(p)
    splits = {name: split_metrics(labels, preds) for name, (labels, preds) in by_split.items()}
    out: dict[str, Any] = {
        "splits": splits,
        "average_f1": sum(m["f1"] for m in splits.values()) / len(splits),
        "average_error_acc": sum(m["error_acc"] for m in splits.values()) / len(splits),
        "average_correct_acc": sum(m["correct_acc"] for m in splits.values()) / len(splits),
        "n": len(samples),
    }
    by_kind: dict[str, list[bool]] = {}
    for s, p in zip(samples, predictions):
        if s.error_kind is not None:
            by_kind.setdefault(s.error_kind, []).append(p == s.label)
    if by_kind:
        out["error_acc_by_kind"] = {
            kind: {"error_acc": 100.0 * sum(hits) / len(hits), "n": len(hits)} for kind, hits in sorted(by_kind.items())
        }
    return out


def prediction_rows(
    samples: Sequence[ProcessBenchSample],
    predictions: Sequence[int | None],
    step_rewards: Sequence[Sequence[float]],
    step_forced: Sequence[Sequence[float]] | None = None,
) -> list[dict[str, Any]]:
    """One row per sample: ``id``, ``split``, ``prediction``, ``step_rewards`` (and the label).

    ``step_forced`` (per step, the share of verification paths whose judgement was forced) is
    written as ``step_forced`` when given.
    """
    if not len(samples) == len(predictions) == len(step_rewards):
        raise ValueError("samples, predictions and step_rewards differ in length")
    if step_forced is not None and len(step_forced) != len(samples):
        raise ValueError("samples and step_forced differ in length")
    rows = []
    for i, (s, p, r) in enumerate(zip(samples, predictions, step_rewards)):
        if len(r) != len(s.steps):
            raise ValueError(f"sample {s.id}: {len(r)} rewards for {len(s.steps)} steps")
        row = {"id": s.id, "split": s.split, "prediction": p, "label": s.label, "step_rewards": [float(x) for x in r]}
        if step_forced is not None:
            if len(step_forced[i]) != len(s.steps):
                raise ValueError(f"sample {s.id}: {len(step_forced[i])} forced shares for {len(s.steps)} steps")
            row["step_forced"] = [float(x) for x in step_forced[i]]
        rows.append(row)
    return rows


def write_predictions(
    path: str | os.PathLike,
    samples: Sequence[ProcessBenchSample],
    predictions: Sequence[int | None],
    step_rewards: Sequence[Sequence[float]],
    step_forced: Sequence[Sequence[float]] | None = None,
) -> int:
    """The predictions file (JSONL, atomic); returns the number of lines."""
    return write_records(path, prediction_rows(samples, predictions, step_rewards, step_forced))


def write_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> None:
    write_json(path, metrics)
