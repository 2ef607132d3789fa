"""great-expectations plumbing shared by the pipeline's quality gates.

Each gate (labels, SFT data) builds pandas frames of its artifact and a list of
expectations; :func:`pandas_validator` runs them in an ephemeral great-expectations context
(no files written) and returns readable failure lines; a gate raises :class:`GateError`
with those lines. Use::

    validate = pandas_validator("labeling")
    failures = validate("solutions", df, [gxe.ExpectColumnValuesToBeUnique(column="id")], ["id"])
    if failures:
        raise GateError(failures)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["GateError", "pandas_validator", "failure_lines", "share"]


class GateError(RuntimeError):
    """The outputs failed the quality gate; the message lists every failed expectation."""

    def __init__(self, failures: list[str]):
        self.failures = failures
        super().__init__("quality gate failed:\n" + "\n".join(failures))


def pandas_validator(source_name: str) -> Callable[[str, Any, list, list[str]], list[str]]:
    """A function ``validate(frame_name, df, expectations, index_cols) -> failure lines``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic: an older/newer layout just keeps them
        pass
    source = ctx.data_sources.add_pandas(source_name)

    def validate(name: str, df: Any, expectations: list, index_cols: list[str]) -> list[str]:
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
        for e in expectations:
            suite.add_expectation(e)
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_check", data=batch, suite=suite))
        result = vd.run(
            batch_parameters={"dataframe": df},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_cols},
        )
        return failure_lines(result, name)

    return validate


def failure_lines(result: Any, frame: str) -> list[str]:
    """One line per failed expectation of a validation result, with up to 5 offending rows."""
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")}
        res = r.result or {}
        line = f"- [{frame}] {cfg.type} {kwargs}"
        if r.exception_info and r.exception_info.get("raised_exception"):
            line += f": error {r.exception_info.get('exception_message')}"
        if "unexpected_count" in res:
            line += f": {res['unexpected_count']} unexpected"
        if res.get("observed_value") is not None:
            line += f": observed {res['observed_value']}"
        rows = res.get("unexpected_index_list") or []
        for row in rows[:5]:
            line += "\n    " + ", ".join(f"{k}={_plain(v)!r}" for k, v in row.items())
        if len(rows) > 5:
            line += f"\n    ... and {len(rows) - 5} more"
        out.append(line)
    return out


def share(column: Any) -> float | None:
    """Mean of a 0/1 column (rounded), or None when it has no numbers."""
    import pandas as pd

    mean = pd.to_numeric(column, errors="coerce").mean()
    return None if pd.isna(mean) else round(float(mean), 4)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
