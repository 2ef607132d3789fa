"""Load ProcessBench (Zheng et al., 2024) as :class:`genprm.records.ProcessBenchSample` records.

Four splits (gsm8k, math, olympiadbench, omnimath). Locally each is one JSON array
``<split>.json`` in a folder (or ``<root>/processbench/<split>.json``); on the Hub they are
the splits of ``Qwen/ProcessBench``. ``label`` is the 0-based index of the earliest wrong
step, -1 when all steps are correct. Rows are checked strictly: types, ``label`` in
``[-1, len(steps) - 1]``, and ``label == -1`` implies ``final_answer_correct`` (the reverse
need not hold: a process error can still reach the right answer).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genprm.data.sources import Row, open_rows
from genprm.records import ProcessBenchSample, RecordError, parse_record

__all__ = ["PROCESSBENCH_HUB_ID", "PROCESSBENCH_SPLITS", "load_processbench", "row_to_sample"]

logger = logging.getLogger(__name__)

PROCESSBENCH_HUB_ID = "Qwen/ProcessBench"
PROCESSBENCH_SPLITS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")


def _type_name(value: Any) -> str:
    return type(value).__name__


def row_to_sample(row: Row, split: str) -> ProcessBenchSample:
    """Validate one raw ProcessBench row; raise :class:`RecordError` naming origin, line and field."""
    data = row.data

    def fail(field: str, message: str) -> RecordError:
        return RecordError(row.origin, row.line, field, message)

    if not isinstance(data, dict):
        raise fail("<row>", f"expected an object, got {_type_name(data)}")
    for field in ("id", "problem", "steps", "final_answer_correct", "label"):
        if field not in data or data[field] is None:
            raise fail(field, "missing")
    for field in ("id", "problem"):
        if not isinstance(data[field], str) or not data[field].strip():
            raise fail(field, f"expected a non-empty string, got {data[field]!r:.60}")
    generator = data.get("generator") or ""
    if not isinstance(generator, str):
        raise fail("generator", f"expected a string, got {_type_name(generator)}")
    steps = data["steps"]
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise fail("steps", "expected a list of strings")
    if not steps:
        raise fail("steps", "empty list of steps")
    correct = data["final_answer_correct"]
    if not isinstance(correct, bool):
        raise fail("final_answer_correct", f"expected a bool, got {_type_name(correct)}")
    label = data["label"]
    if not isinstance(label, int) or isinstance(label, bool):
        raise fail("label", f"expected an integer, got {_type_name(label)}")
    if not -1 <= label < len(steps):
        raise fail("label", f"{label} is out of range [-1, {len(steps) - 1}] for {len(steps)} steps")
    if label == -1 and not correct:
        raise fail("final_answer_correct", "false, but label -1 says every step is correct")
    kind = data.get("error_kind")  # not in the real benchmark; the world's sets it
    if kind is not None and (not isinstance(kind, str) or label == -1):
        raise fail("error_kind", f"expected a string on a sample with an error, got {kind!r:.60} (label {label})")
    record = {
        "id": data["id"],
        "generator": generator,
        "problem": data["problem"],
        "steps": steps,
        "final_answer_correct": correct,
        "label": label,
        "split": split,
        "error_kind": kind,
    }
    return parse_record(ProcessBenchSample, record, path=row.origin, line=row.line)


def _check_splits(splits: Sequence[str] | None) -> tuple[str, ...]:
    if splits is None:
        return PROCESSBENCH_SPLITS
    if isinstance(splits, str):
        splits = (splits,)
    unknown = [s for s in splits if s not in PROCESSBENCH_SPLITS]
    if unknown:
        raise ValueError(f"unknown ProcessBench split(s) {unknown}; known: {', '.join(PROCESSBENCH_SPLITS)}")
    return tuple(splits)


def load_processbench(
    source: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[ProcessBenchSample]:
    """Load ProcessBench samples, split by split, with ``split`` set on each record.

    ``source``: a folder with ``<split>.json`` files, a data root (``<root>/processbench/``),
    one split file (its stem is the split, any name, e.g. the world's ``world.json``), a
    ``save_to_disk`` folder, or a Hub id; None
    means ``Qwen/ProcessBench``. ``splits`` defaults to all four. ``limit`` caps the number
    of samples per split. Ids must be unique across the splits loaded.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    src: str | os.PathLike = PROCESSBENCH_HUB_ID if source is None else source
    path = Path(src).expanduser()
    if path.is_file():
        if splits is not None and path.stem not in ((splits,) if isinstance(splits, str) else tuple(splits)):
            raise ValueError(f"{path}: file split {path.stem!r} is not among the requested splits {list(splits)}")
        jobs = [(path.stem, path)]
    else:
        jobs = [(split, src) for split in _check_splits(splits)]

    samples: list[ProcessBenchSample] = []
    seen: dict[str, str] = {}
    for split, where in jobs:
        names = [f"{split}.json", f"{split}.jsonl", f"processbench/{split}.json", f"processbench/{split}.jsonl"]
        count = 0
        for row in open_rows(where, file_names=names, hub_split=split):
            if limit is not None and count >= limit:
                break
            sample = row_to_sample(row, split)
            if sample.id in seen:
                first = seen[sample.id]
                raise RecordError(row.origin, row.line, "id", f"duplicate id {sample.id!r} (first at {first})")
            seen[sample.id] = f"{row.origin}:{row.line}"
            samples.append(sample)
            count += 1
        logger.info("loaded %d ProcessBench %s samples from %s", count, split, where)
    return samples
