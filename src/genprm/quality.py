"""great-expectations plumbing shared by the pipeline's quality gates, and how a stage fails.

Each gate (labels, SFT data) builds pandas frames of its artifact and a list of
expectations; :func:`pandas_validator` runs them in an ephemeral great-expectations context
(no files written) and returns one :class:`GateFailure` per failed expectation (its name,
column, observed value, count and up to :data:`MAX_REPORTED_ROWS` rejected rows); a gate raises
:class:`GateError` with them and a hint of what to change. Use::

    validate = pandas_validator("labeling")
    failures = validate("solutions", df, [gxe.ExpectColumnValuesToBeUnique(column="id")], ["id"])
    if failures:
        raise GateError(failures, hint="...")

How a stage fails. A stage whose outputs must not be used raises a :class:`StageFailure`: a
:class:`GateError` (a quality gate failed) or a :class:`StageOutputError` (the output would be
empty, e.g. the rollout kept no problem). Either carries ``metrics``, the stage's metrics with
the report, which the stage script writes before it exits non-zero (:func:`fail_stage`), so the
report of a failed run can be read in ``metrics/<stage>.json``::

    try:
        metrics = labels_stage(...)
    except StageFailure as exc:
        return fail_stage(exc, args.metrics)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_REPORTED_ROWS",
    "StageFailure",
    "GateError",
    "StageOutputError",
    "GateFailure",
    "fail_stage",
    "pandas_validator",
    "failure_records",
    "failure_lines",
    "share",
]

log = logging.getLogger(__name__)

MAX_REPORTED_ROWS = 20
"""Rejected rows kept per failed expectation in a gate's report (the message shows 5)."""

_ROWS_IN_MESSAGE = 5


class StageFailure(Exception):
    """A stage ran but its outputs must not be used; ``metrics`` is what its script writes before failing."""

    def __init__(self, message: str, metrics: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.metrics: dict[str, Any] | None = dict(metrics) if metrics is not None else None


@dataclass
class GateFailure:
    """One failed expectation of a gate: what was expected, where, what was seen, which rows."""

    frame: str
    expectation: str
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    unexpected_count: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Up to :data:`MAX_REPORTED_ROWS` rejected rows (their index columns)."""
    error: str | None = None

    def line(self, max_rows: int = _ROWS_IN_MESSAGE) -> str:
        """The readable form: one line, then up to ``max_rows`` rejected rows indented."""
        out = f"- [{self.frame}] {self.expectation} {self.kwargs}"
        if self.error:
            out += f": error {self.error}"
        if self.unexpected_count is not None:
            out += f": {self.unexpected_count} unexpected"
        if self.observed is not None:
            out += f": observed {self.observed}"
        for row in self.rows[:max_rows]:
            out += "\n    " + ", ".join(f"{k}={v!r}" for k, v in row.items())
        total = self.unexpected_count if self.unexpected_count is not None else len(self.rows)
        if total > min(max_rows, len(self.rows)):
            out += f"\n    ... and {total - min(max_rows, len(self.rows))} more"
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into the stage's metrics (``message`` is the first line)."""
        return {
            "message": self.line(max_rows=0).splitlines()[0],
            "frame": self.frame,
            "expectation": self.expectation,
            "column": self.column,
            "kwargs": self.kwargs,
            "observed": self.observed,
            "unexpected_count": self.unexpected_count,
            "rows": self.rows,
            **({"error": self.error} if self.error else {}),
        }

    def __str__(self) -> str:
        return self.line()


class GateError(StageFailure, RuntimeError):
    """The outputs failed the quality gate; the message lists every failed expectation and what to change.

    ``failures``: the readable lines (one per failed expectation); ``report``: the
    :class:`GateFailure` records; ``summary``: the gate's summary (counts, shares, ``failures``
    as dicts), which the stage puts into its metrics as ``gate``; ``hint``: what to change.
    """

    def __init__(
        self,
        failures: Sequence[GateFailure | str],
        *,
        hint: str = "",
        summary: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ):
        self.report = [f for f in failures if isinstance(f, GateFailure)]
        self.failures = [str(f) for f in failures]
        self.hint = hint
        self.summary = dict(summary) if summary is not None else {"failed": len(self.failures)}
        message = "quality gate failed:\n" + "\n".join(self.failures)
        if hint:
            message += "\n" + hint
        super().__init__(message, metrics)


class StageOutputError(StageFailure, ValueError):
    """A stage's output would be empty (or unusable as a whole); the message names the cause and the knob."""


def fail_stage(exc: StageFailure, metrics_path: str | os.PathLike | None, code: int = 1,
               timings_path: str | os.PathLike | None = None) -> int:
    """Write ``exc.metrics`` to ``metrics_path`` (when both exist), log the failure, return exit ``code``.

    Durations in the metrics go to ``timings_path`` instead (dropped when it is None), as
    :func:`genprm.logs.write_report` does for a stage that succeeds.
    """
    from genprm.logs import write_report

    if metrics_path is not None and exc.metrics is not None:
        write_report(exc.metrics, metrics_path, timings_path)
        log.error("%s\n(the report is in %s)", exc, Path(metrics_path))
    else:
        log.error("%s", exc)
    return code


def pandas_validator(source_name: str) -> Callable[[str, Any, list, list[str]], list[GateFailure]]:
    """A function ``validate(frame_name, df, expectations, index_cols) -> failures``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic: an older/newer layout just keeps them
        pass
    source = ctx.data_sources.add_pandas(source_name)

    def validate(name: str, df: Any, expectations: list, index_cols: list[str]) -> list[GateFailure]:
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
        for e in expectations:
            suite.add_expectation(e)
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_check", data=batch, suite=suite))
        result = vd.run(
            batch_parameters={"dataframe": df},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_cols},
        )
        return failure_records(result, name)

    return validate


def failure_records(result: Any, frame: str, max_rows: int = MAX_REPORTED_ROWS) -> list[GateFailure]:
    """One :class:`GateFailure` per failed expectation of a validation result, with up to ``max_rows`` rows."""
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kwargs = {k: _plain(v) for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")}
        res = r.result or {}
        error = None
        if r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message"))
        rows = [{k: _plain(v) for k, v in row.items()} for row in (res.get("unexpected_index_list") or [])[:max_rows]]
        count = res.get("unexpected_count")
        out.append(GateFailure(
            frame=frame,
            expectation=cfg.type,
            column=kwargs.get("column"),
            kwargs=kwargs,
            observed=_plain(res.get("observed_value")),
            unexpected_count=int(count) if count is not None else None,
            rows=rows,
            error=error,
        ))
    return out


def failure_lines(result: Any, frame: str) -> list[str]:
    """One readable line per failed expectation of a validation result, with up to 5 offending rows."""
    return [f.line() for f in failure_records(result, frame)]


def share(column: Any) -> float | None:
    """Mean of a 0/1 column (rounded), or None when it has no numbers."""
    import pandas as pd

    mean = pd.to_numeric(column, errors="coerce").mean()
    return None if pd.isna(mean) else round(float(mean), 4)


def _plain(v: Any) -> Any:
    """A JSON-friendly value: numpy scalars unwrapped, NaN as None, containers walked."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        try:
            v = v.item()
        except (ValueError, TypeError):
            return str(v)
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)
