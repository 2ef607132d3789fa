"""``genprm grade``: grade a JSONL file of ``{"gold", "pred"}`` pairs.

Each input line is a JSON object with string fields ``gold`` and ``pred``
(other fields are kept).  Each output line is the same object plus
``"equivalent": bool``.  The whole input is validated before any grading; a
malformed line is reported as ``FILE:LINE: field 'NAME' ...`` and the command
exits with status 2 without creating the output file.  The output is written
to a temporary file in the destination folder and moved into place only when
complete.  Blank input lines are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from genprm.grading import DEFAULT_TIMEOUT, grade_pairs

__all__ = ["GradingInputError", "add_parser", "load_pairs", "run_grade", "write_graded"]


class GradingInputError(ValueError):
    """A malformed line in a grading input file."""


def load_pairs(path: Path) -> list[dict[str, Any]]:
    """Read and validate a grading JSONL file.

    Raises :class:`GradingInputError` naming the file, line and field.
    """
    records: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GradingInputError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(record, dict):
                raise GradingInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for field in ("gold", "pred"):
                if field not in record:
                    raise GradingInputError(f"{where}: field '{field}' is missing")
                if not isinstance(record[field], str):
                    raise GradingInputError(
                        f"{where}: field '{field}' must be a string, got {type(record[field]).__name__}"
                    )
            records.append(record)
    return records


def write_graded(path: Path, records: list[dict[str, Any]]) -> None:
    """Write ``records`` as JSONL atomically (temp file + ``os.replace``)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def run_grade(args: argparse.Namespace) -> int:
    """Run the ``grade`` command; returns the process exit code."""
    input_path = Path(args.input)
    output_path = Path(args.output)
    try:
        records = load_pairs(input_path)
    except GradingInputError as exc:
        print(f"genprm grade: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"genprm grade: error: cannot read {input_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not output_path.parent.is_dir():
        print(f"genprm grade: error: output folder {output_path.parent} does not exist", file=sys.stderr)
        return 2

    verdicts = grade_pairs(
        [(r["gold"], r["pred"]) for r in records],
        workers=args.workers,
        timeout=args.timeout,
        progress=False if args.no_progress else None,
    )
    for record, verdict in zip(records, verdicts, strict=True):
        record["equivalent"] = verdict
    write_graded(output_path, records)
    n_equal = sum(verdicts)
    print(f"graded {len(records)} pairs, {n_equal} equivalent -> {output_path}", file=sys.stderr)
    return 0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grade`` on ``subparsers`` (from ``parser.add_subparsers()``)."""
    parser = subparsers.add_parser(
        "grade",
        help="grade (gold, pred) answer pairs for mathematical equivalence",
        description="Read JSONL lines {\"gold\": str, \"pred\": str} and write them back "
        "with \"equivalent\": bool added.",
    )
    parser.add_argument("--input", required=True, help="input JSONL file")
    parser.add_argument("--output", required=True, help="output JSONL file (written atomically)")
    parser.add_argument(
        "--workers", type=_positive_int, default=None, help="grading worker processes (default: CPU count)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds allowed per pair before it counts as not equivalent (default: {DEFAULT_TIMEOUT})",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.set_defaults(func=run_grade)
    return parser
