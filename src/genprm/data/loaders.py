"""Load a named problem dataset (MATH, MATH-500, AIME24, AMC23, Minerva Math) as Problems.

``load_problems(name, source, split=..., limit=...)`` reads rows from a local file/folder or
the Hub (see :mod:`genprm.data.sources`) and maps every row, whatever its origin, through
:func:`row_to_problem`. Field names are looked up from short candidate lists, so the local
copies and the Hub versions (``question`` vs ``problem``, ``Answer`` vs ``answer`` ...)
share one code path. Answers become clean strings: ``27.0`` -> ``"27"``, ``2.5`` -> ``"2.5"``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from genprm.data.boxed import last_boxed
from genprm.data.registry import DatasetSpec, get_spec
from genprm.data.sources import Row, open_rows
from genprm.records import Problem, RecordError, parse_record

__all__ = ["load_problems", "row_to_problem", "answer_to_str"]

logger = logging.getLogger(__name__)

ID_FIELDS = ("unique_id", "id", "ID", "idx")
PROBLEM_FIELDS = ("problem", "question", "Problem")
ANSWER_FIELDS = ("answer", "Answer")
SOLUTION_FIELDS = ("solution", "Solution")


def _first(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``names`` present in ``row`` with a non-null value; ``(names[0], None)`` if none."""
    for name in names:
        if row.get(name) is not None:
            return name, row[name]
    return names[0], None


def answer_to_str(value: Any) -> str | None:
    """A reference answer as a clean string (None if empty). Raises TypeError/ValueError on bad input.

    Integers and integral floats print without a decimal part (``27.0`` -> ``"27"``);
    other floats keep their shortest exact repr (``2.5`` -> ``"2.5"``).
    """
    if isinstance(value, bool):
        raise TypeError("expected a string or a number, got bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip() or None
    raise TypeError(f"expected a string or a number, got {type(value).__name__}")


def row_to_problem(spec: DatasetSpec, row: Row, *, split: str, index: int) -> Problem | None:
    """Map one raw row to a Problem; None if it has no answer and ``spec.skip_unanswered``.

    ``index`` (0-based row number) makes the id when the row has no id field. Raises
    :class:`RecordError` naming the row's origin, line and field on malformed input.
    """
    data = row.data
    if not isinstance(data, dict):
        raise RecordError(row.origin, row.line, "<row>", f"expected an object, got {type(data).__name__}")

    def fail(field: str, message: str) -> RecordError:
        return RecordError(row.origin, row.line, field, message)

    field, problem = _first(data, PROBLEM_FIELDS)
    if problem is None:
        raise fail(field, f"missing (looked for {', '.join(PROBLEM_FIELDS)})")
    if not isinstance(problem, str):
        raise fail(field, f"expected a string, got {type(problem).__name__}")
    if not problem.strip():
        raise fail(field, "empty problem text")

    sol_field, solution = _first(data, SOLUTION_FIELDS)
    if solution is not None and not isinstance(solution, str):
        raise fail(sol_field, f"expected a string, got {type(solution).__name__}")

    ans_field, raw_answer = _first(data, ANSWER_FIELDS)
    try:
        answer = None if raw_answer is None else answer_to_str(raw_answer)
    except (TypeError, ValueError) as exc:
        raise fail(ans_field, str(exc)) from None
    if answer is None and spec.answer_from_solution and solution is not None:
        answer = last_boxed(solution)
    if answer is None:
        if spec.skip_unanswered:
            return None
        where = " or a \\boxed{} in the solution" if spec.answer_from_solution else ""
        raise fail(ans_field, f"no reference answer (looked for {', '.join(ANSWER_FIELDS)}{where})")

    id_field, raw_id = _first(data, ID_FIELDS)
    if raw_id is None:
        local_id = f"{split}/{index}" if len(spec.splits) > 1 else str(index)
    elif isinstance(raw_id, str) and raw_id.strip():
        local_id = raw_id.strip()
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        local_id = str(raw_id)
    else:
        raise fail(id_field, f"expected a non-empty string or an integer, got {raw_id!r}")

    metadata: dict[str, Any] = {"split": split}
    metadata.update({k: data[k] for k in spec.metadata_fields if data.get(k) is not None})
    record = {
        "id": f"{spec.name}/{local_id}",
        "problem": problem,
        "answer": answer,
        "source": spec.name,
        "solution": solution,
        "metadata": metadata,
    }
    return parse_record(Problem, record, path=row.origin, line=row.line)


def _file_names(spec: DatasetSpec, split: str) -> list[str]:
    """Relative paths tried inside a local folder: the dataset folder itself, then a data root."""
    names = [f"{split}{suffix}" for suffix in (".jsonl", ".json", ".parquet")]
    return names + [f"{spec.local_dir}/{name}" for name in names]


def load_problems(
    name: str,
    source: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Load dataset ``name`` (a key of :data:`genprm.data.LOADERS`) as Problems.

    ``source``: a file, a dataset folder (``<split>.jsonl``), a data root
    (``<root>/<name>/<split>.jsonl``), a ``save_to_disk`` folder, or a Hub id; None means the
    spec's default Hub id. ``split`` defaults to the spec's default split. ``limit`` caps the
    number of problems returned. Rows without any answer are skipped with a warning where the
    spec allows it (MATH); duplicate ids and malformed rows raise :class:`RecordError`.
    """
    spec = get_spec(name)
    split = split or spec.default_split
    if split not in spec.splits:
        raise ValueError(f"{spec.name} has no split {split!r} (splits: {', '.join(spec.splits)})")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    src: str | os.PathLike = spec.hub_id if source is None else source
    configs = spec.hub_configs if str(src) == spec.hub_id and not isinstance(src, Path) else ()
    rows = open_rows(src, file_names=_file_names(spec, split), hub_split=spec.hub_split(split), hub_configs=configs)

    problems: list[Problem] = []
    seen: dict[str, int] = {}
    skipped: list[str] = []
    for index, row in enumerate(rows):
        if limit is not None and len(problems) >= limit:
            break
        problem = row_to_problem(spec, row, split=split, index=index)
        if problem is None:
            skipped.append(f"{row.origin}:{row.line}")
            continue
        if problem.id in seen:
            first = seen[problem.id]
            raise RecordError(row.origin, row.line, "id", f"duplicate id {problem.id!r} (first at line {first})")
        seen[problem.id] = row.line
        problems.append(problem)
    if skipped:
        logger.warning(
            "%s/%s: skipped %d row(s) without a reference answer: %s",
            spec.name,
            split,
            len(skipped),
            ", ".join(skipped),
        )
    logger.info("loaded %d %s/%s problems from %s", len(problems), spec.name, split, src)
    return problems
