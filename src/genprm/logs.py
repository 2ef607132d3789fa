"""Logging set-up and progress bars shared by stages, flows and the CLI.

The library only calls ``logging.getLogger(__name__)``; entry points call
:func:`setup_logging` once. :func:`progress` wraps ``tqdm``: bars go to stderr, are shown on
a terminal and hidden elsewhere, and ``GENPRM_PROGRESS=1`` / ``0`` forces them on / off.

Timings: :func:`timed` measures a block. A stage's report mixes counts with durations; durations
change on every run, so they stay out of the DVC-tracked ``metrics/<stage>.json`` (a rerun with
the same inputs then leaves ``dvc.lock`` unchanged). :func:`split_timings` separates them (every
key naming seconds, and the rates computed from them: ``*_per_s``, ``*_per_second``) and
:func:`write_report` writes the two parts, the durations to the untracked ``timings/<stage>.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["setup_logging", "progress", "timed", "is_timing_key", "split_timings", "write_report", "timings_path"]

T = TypeVar("T")


def setup_logging(level: str | int | None = None) -> None:
    """Configure the root logger once (level from ``GENPRM_LOG_LEVEL``, default INFO)."""
    level = level or os.environ.get("GENPRM_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _bar_disabled() -> bool | None:
    flag = os.environ.get("GENPRM_PROGRESS")
    if flag is None:
        return None  # tqdm: hide when stderr is not a terminal
    return flag.strip().lower() in ("0", "false", "no", "off")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``tqdm`` over ``iterable`` with the project's defaults."""
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=_bar_disabled(), dynamic_ncols=True))


@contextmanager
def timed(name: str, logger: logging.Logger | None = None) -> Iterator[dict]:
    """Measure a block: yields a dict whose ``seconds`` is filled in at exit, and logs it."""
    out: dict = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = round(time.perf_counter() - start, 3)
        (logger or logging.getLogger("genprm")).info("%s took %.2f s", name, out["seconds"])


def is_timing_key(key: object) -> bool:
    """Whether a report key holds a duration or a rate computed from one (``seconds``, ``*_per_s``...)."""
    k = str(key).lower()
    return "seconds" in k or k.endswith("_per_s") or "per_second" in k


def split_timings(report: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, timings)``: ``report`` without its timing keys, and those keys alone.

    Nested dicts are split too and keep their place in both parts (``{"train": {"train_seconds": 1}}``
    goes to timings as it is); a nested dict that held only timings disappears from the metrics.
    """
    metrics: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    for key, value in report.items():
        if is_timing_key(key):
            timings[key] = value
        elif isinstance(value, Mapping):
            inner, inner_timings = split_timings(value)
            if inner_timings:
                timings[key] = inner_timings
            if inner or not inner_timings:
                metrics[key] = inner
        else:
            metrics[key] = value
    return metrics, timings


def timings_path(stage: str, metrics_path: str | os.PathLike | None = None) -> Path:
    """Where a stage writes its durations by default (untracked, never a DVC output).

    ``timings/<stage>.json`` beside the ``metrics/`` folder of ``metrics_path`` (so the pipeline's
    ``metrics/rollout.json`` pairs with ``timings/rollout.json``); a metrics file elsewhere gets
    ``<its stem>.timings.json`` beside it; no metrics path: ``timings/<stage>.json`` here.
    """
    if metrics_path is None:
        return Path("timings") / f"{stage}.json"
    metrics = Path(metrics_path)
    if metrics.parent.name == "metrics":
        return metrics.parent.parent / "timings" / f"{stage}.json"
    return metrics.with_name(f"{metrics.stem}.timings.json")


def write_report(
    report: Mapping[str, Any], metrics_path: str | os.PathLike, timings_file: str | os.PathLike | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``report``'s metrics to ``metrics_path`` and its timings to ``timings_file`` (atomically).

    Returns ``(metrics, timings)`` as written; ``timings_file=None`` drops the timings (still returned).
    """
    from genprm.records import write_json

    metrics, timings = split_timings(report)
    write_json(metrics_path, metrics)
    if timings_file is not None:
        write_json(timings_file, timings)
    return metrics, timings
