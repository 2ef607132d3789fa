"""Typed records that flow between the pipeline's stages, and their file IO.

Every artifact of the pipeline is a list of one of these records:

- :class:`Problem`     a question with its reference answer (training or evaluation set).
- :class:`Solution`    a policy answer split into steps, with its final answer and correctness.
- :class:`StepValues`  Monte-Carlo values of a solution's step prefixes and the labels derived from them.
- :class:`Verdict`     one step's judgement by a teacher or a PRM (Yes/No, reward, rationale).
- :class:`Rationale`   a teacher's whole review of one solution: per-step verdicts and the earliest error.
- :class:`ProcessBenchSample`  one row of ProcessBench (or the world's benchmark) in its own schema.
- :class:`SFTExample`  one GenPRM training conversation, with the spans training must not learn.

IO: :func:`read_records` / :func:`write_records` handle JSONL (``.jsonl``) and parquet
(``.parquet``) by file suffix. Writes are atomic (temp file in the same folder, then
``os.replace``), so a crash never leaves a half-written artifact. A malformed row raises
:class:`RecordError` naming the file, the line (1-based; the row for parquet) and the field.
:func:`to_dataset` / :func:`from_dataset` convert to and from ``datasets.Dataset``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "Record",
    "Problem",
    "Solution",
    "StepValues",
    "Verdict",
    "Rationale",
    "ProcessBenchSample",
    "SFTExample",
    "RecordError",
    "read_records",
    "iter_records",
    "write_records",
    "atomic_write",
    "atomic_write_text",
    "write_json",
    "replace_dir",
    "to_dataset",
    "from_dataset",
]


class Record(BaseModel):
    """Base of all records: unknown fields are rejected, values are validated on creation."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Problem(Record):
    """A math problem with its reference answer."""

    id: str
    problem: str
    answer: str | None = None
    source: str = ""
    solution: str | None = None
    """A reference solution text where the source has one (MATH, Minerva)."""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Solution(Record):
    """A policy's answer to a problem, split into steps."""

    id: str
    problem_id: str
    problem: str
    steps: list[str]
    final_answer: str | None = None
    correct: bool | None = None
    generator: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepValues(Record):
    """Monte-Carlo values of one solution's steps and the labels derived from them.

    ``mc[t]`` is MC(s_{t+1}) = MC(s_t, a_t): the share of completions from the prefix that
    ends with step ``t`` (0-based) whose final answer is correct. ``mc_first`` is MC(s_1),
    the Pass@1 estimate before any step. ``k[t]`` is how many completions were sampled
    (0 where the value was implied, e.g. after the first zero).
    """

    solution_id: str
    problem_id: str
    mc_first: float = Field(ge=0.0, le=1.0)
    mc: list[float]
    k: list[int]
    labels: dict[str, list[int]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> StepValues:
        if len(self.k) != len(self.mc):
            raise ValueError(f"k has {len(self.k)} entries but mc has {len(self.mc)}")
        for i, v in enumerate(self.mc):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"mc[{i}] = {v} is outside [0, 1]")
        return self


class Verdict(Record):
    """One step's judgement.

    ``reward`` is P(Yes); ``correct`` is ``reward >= threshold``. Both are None when no judgement
    was given (a teacher's review without a parseable ``\\boxed{Yes}``/``\\boxed{No}``): a
    missing judgement is never a score. ``forced`` is the share of the step's verification paths
    whose judgement was forced (read from the model's logits after the forced judgement prefix).
    """

    step: int = Field(ge=0)
    correct: bool | None
    reward: float | None = Field(ge=0.0, le=1.0)
    forced: float = Field(0.0, ge=0.0, le=1.0)
    text: str = ""

    @model_validator(mode="after")
    def _judged_together(self) -> Verdict:
        if (self.correct is None) != (self.reward is None):
            raise ValueError("correct and reward are None together (no judgement) or both set")
        return self


class Rationale(Record):
    """A teacher's review of one solution."""

    solution_id: str
    teacher: str
    verdicts: list[Verdict]
    first_error: int = Field(ge=-1)
    """0-based index of the earliest wrong step, -1 when every step is judged correct."""
    text: str = ""


class ProcessBenchSample(Record):
    """A ProcessBench row. ``label`` is the 0-based index of the earliest wrong step, -1 if none.

    ``error_kind`` is not in the real benchmark: a benchmark that knows what kind of mistake its
    first error is (the world's, from its checker) sets it, and the evaluation then reports the
    accuracy per kind.
    """

    id: str
    generator: str = ""
    problem: str
    steps: list[str]
    final_answer_correct: bool
    label: int = Field(ge=-1)
    split: str = ""
    error_kind: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ProcessBenchSample:
        if self.label >= len(self.steps):
            raise ValueError(f"label {self.label} is out of range for {len(self.steps)} steps")
        if self.error_kind is not None and self.label == -1:
            raise ValueError(f"error_kind {self.error_kind!r} on a sample without error (label -1)")
        return self


class SFTExample(Record):
    """A GenPRM training conversation in the exact GenPRM format.

    ``messages`` are chat turns (``role``, ``content``): the system prompt, one user turn per
    step, one assistant turn per step. An assistant turn may carry two extra keys with
    ``[start, end)`` character offsets into its ``content``:

    - ``exec_spans``: executed ``[Code Output]`` blocks (text the model never generated; never
      trained on);
    - ``prefix_spans``: the forced stage prefixes (``<analyze>\nLet's analyze the Paragraph t
      step by step: `` and the ``<verify>`` opening), optionally left out of the loss.

    ``step_labels`` are the per-step verdicts of the conversation (1 = Yes, 0 = No).
    """

    id: str
    solution_id: str
    source: str = ""
    messages: list[dict[str, Any]]
    step_labels: list[int]

    @model_validator(mode="after")
    def _check(self) -> SFTExample:
        for i, m in enumerate(self.messages):
            if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise ValueError(f"messages[{i}] needs a role (system/user/assistant) and a string content")
            for key in ("exec_spans", "prefix_spans"):
                for span in m.get(key, []):
                    if m["role"] != "assistant" or not (0 <= span[0] <= span[1] <= len(m["content"])):
                        raise ValueError(f"messages[{i}].{key}: span {span} is not inside an assistant turn")
        if any(v not in (0, 1) for v in self.step_labels):
            raise ValueError("step_labels must be 0 or 1")
        return self


R = TypeVar("R", bound=Record)


class RecordError(ValueError):
    """A row of a file does not fit its record type. The message names file, line and field."""

    def __init__(self, path: str | os.PathLike, line: int, field: str, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        super().__init__(f"{self.path}, line {line}, field '{field}': {message}")


def parse_record(cls: type[R], row: Any, *, path: str | os.PathLike = "<memory>", line: int = 0) -> R:
    """Validate one row into ``cls``; on failure raise :class:`RecordError`."""
    if not isinstance(row, dict):
        raise RecordError(path, line, "<row>", f"expected a JSON object, got {type(row).__name__}")
    try:
        return cls.model_validate(row)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<row>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(cls.model_fields)})"
        raise RecordError(path, line, field, msg) from None


def iter_records(path: str | os.PathLike, cls: type[R]) -> Iterator[R]:
    """Yield records of type ``cls`` from a ``.jsonl`` or ``.parquet`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise RecordError(path, lineno, "<json>", f"invalid JSON: {exc.msg}") from None
                yield parse_record(cls, row, path=path, line=lineno)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield parse_record(cls, _from_parquet_row(row), path=path, line=i)
    else:
        raise ValueError(f"{path}: unsupported suffix '{suffix}' (use .jsonl or .parquet)")


def read_records(path: str | os.PathLike, cls: type[R]) -> list[R]:
    """Read a whole ``.jsonl`` / ``.parquet`` file into a list of ``cls``."""
    return list(iter_records(path, cls))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temp file beside ``path``; on success move it over ``path`` atomically.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kwargs = {"encoding": "utf-8", "newline": "\n"} if "b" not in mode else {}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as stable, indented JSON (sorted keys) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def replace_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a fresh temp folder beside ``path``; on success it replaces ``path`` whole.

    Files from an earlier run that the new run does not write are gone afterwards, and a
    crash leaves the old folder untouched.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _row(rec: Record | dict) -> dict:
    return rec.to_dict() if isinstance(rec, Record) else dict(rec)


# parquet cannot store an empty struct or a free-form dict reliably: encode those as JSON text.
_JSON_COLUMNS = ("metadata", "labels")


def _to_parquet_row(row: dict) -> dict:
    return {k: (json.dumps(v, sort_keys=True) if k in _JSON_COLUMNS else v) for k, v in row.items()}


def _from_parquet_row(row: dict) -> dict:
    return {k: (json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v) for k, v in row.items()}


def write_records(path: str | os.PathLike, records: Iterable[Record | dict]) -> int:
    """Write records to ``.jsonl`` or ``.parquet`` atomically; returns the number written.

    JSONL lines use sorted keys and no ASCII escaping so equal records give equal bytes.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    rows = [_row(r) for r in records]
    if suffix == ".jsonl":
        with atomic_write(path) as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False))
                fh.write("\n")
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([_to_parquet_row(r) for r in rows])
        with atomic_write(path, "wb") as fh:
            pq.write_table(table, fh)
    else:
        raise ValueError(f"{path}: unsupported suffix '{suffix}' (use .jsonl or .parquet)")
    return len(rows)


def to_dataset(records: Iterable[Record]):
    """A ``datasets.Dataset`` with one row per record (dict fields stored as JSON text)."""
    import datasets

    return datasets.Dataset.from_list([_to_parquet_row(_row(r)) for r in records])


def from_dataset(ds, cls: type[R], *, name: str = "<dataset>") -> list[R]:
    """Records of type ``cls`` from a ``datasets.Dataset`` (rows are validated)."""
    return [parse_record(cls, _from_parquet_row(row), path=name, line=i) for i, row in enumerate(ds, start=1)]
