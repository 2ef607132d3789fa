"""The gated model registry: register every trained GenPRM, promote only what passed every check.

A trained model becomes a new version of a registered MLflow model. It gets alias ``champion``
only when all of these hold (:func:`promotion_decision`, a pure function):

1. every quality gate in its data lineage passed: each metrics file in ``gates`` exists and its
   ``gate`` section (written by a great-expectations gate) reports ``failed: 0``;
2. every threshold holds, e.g. ``"metrics/eval_world.json:processbench.pass@1.average_f1 >= 80"``
   (a metric is ``<metrics file>:<dotted key into its JSON>``);
3. the ``compare`` metric beats the current champion's by more than ``min_delta`` (no champion
   yet: nothing to beat).

Otherwise the version gets alias ``candidate`` (which moves to the newest blocked version) and
tags ``promotion=blocked`` and ``promotion.reasons``. Either way the version carries the metric
values it was judged on (tag ``promotion.metrics``, JSON), which is where the next
registration reads the champion's values from (:func:`champion_metrics`), plus the lineage tags
given by the caller. Use::

    cfg = RegisterConfig.model_validate(params["registry"])
    champion = champion_metrics(cfg.model_name, cfg.metric_specs())
    decision = promotion_decision(gates, metrics, champion.metrics if champion else None, cfg)
    result = register_model("models/genprm", cfg, decision, log_model=my_logger, tags=lineage)

Before anything is read, :func:`require_inputs` checks that the model folder and every metrics
file the decision reads exist; a missing one raises :class:`MissingInputError`, whose message
names the file and the stage that writes it (``producers``), so a register run never starts on
half a lineage.

``log_model`` logs the model into the active run and registers it: it is called as
``log_model(model_dir=..., registered_model_name=...)`` and returns MLflow's ``ModelInfo``
(e.g. :func:`genprm.serving.log_verifier_model` with its engine arguments bound). Runs go
through :mod:`genprm.tracking`, so the registration is a child of the pipeline run.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from genprm.config import Section
from genprm.evaluation.config import VerifierConfig

__all__ = [
    "CHAMPION",
    "CANDIDATE",
    "Threshold",
    "CompareConfig",
    "RegisterConfig",
    "Decision",
    "Champion",
    "Registration",
    "split_metric",
    "lookup",
    "metric_value",
    "promotion_decision",
    "champion_metrics",
    "register_model",
    "read_metrics_files",
    "MissingInputError",
    "require_inputs",
]

log = logging.getLogger(__name__)

CHAMPION = "champion"
CANDIDATE = "candidate"
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*(?P<metric>\S+?[^\s=<>!])\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>[^\s=<>!]\S*)\s*$")
_REASONS_TAG_MAX = 5000


def split_metric(spec: str) -> tuple[str, str]:
    """``"metrics/x.json:a.b"`` -> ``("metrics/x.json", "a.b")``; raises ValueError on a bad spec."""
    file, sep, key = spec.partition(":")
    if not sep or not file.strip() or not key.strip():
        raise ValueError(f"metric {spec!r} must be '<metrics file>:<dotted.key>', e.g. 'metrics/eval.json:f1'")
    return file.strip(), key.strip()


class Threshold(Section):
    """A bound on one metric; written ``"file:dotted.key >= value"`` or as ``{metric, op, value}``."""

    metric: str = Field(description="'<metrics file>:<dotted key into its JSON>'")
    op: Literal[">=", ">", "<=", "<", "=="] = ">="
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _THRESHOLD.match(data)
            if not m:
                raise ValueError(f"threshold {data!r} must read '<file>:<dotted.key> <op> <number>' "
                                 f"with op in {list(_OPS)} (no spaces inside the metric)")
            try:
                value = float(m["value"])
            except ValueError:
                raise ValueError(f"threshold {data!r}: {m['value']!r} is not a number") from None
            return {"metric": m["metric"], "op": m["op"], "value": value}
        return data

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, v: str) -> str:
        split_metric(v)
        return v

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class CompareConfig(Section):
    """The metric a new version must beat the champion on; written ``"file:key"`` or ``{metric, ...}``."""

    metric: str = Field(description="'<metrics file>:<dotted key into its JSON>'")
    mode: Literal["max", "min"] = Field("max", description="max: higher is better; min: lower is better")
    min_delta: float = Field(0.0, ge=0, description="must beat the champion by more than this")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"metric": data} if isinstance(data, str) else data

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, v: str) -> str:
        split_metric(v)
        return v


class RegisterConfig(Section):
    """The ``registry`` params section (``register`` stage): the registered model, and what a
    version must pass to become its champion."""

    model_name: str = Field("genprm", min_length=1, description="registered model name")
    gates: list[str] = Field(
        default_factory=lambda: ["metrics/labels.json", "metrics/synthesis.json"],
        description="metrics files of the data lineage whose 'gate' section must exist with failed == 0",
    )
    thresholds: list[Threshold] = Field(default_factory=list)
    compare: CompareConfig | None = Field(None, description="metric that must beat the current champion")
    verifier: VerifierConfig = Field(
        default_factory=VerifierConfig, description="engine and verifier options of the registered (served) model"
    )
    threshold: float = Field(0.5, ge=0, le=1,
                             description="served model: the first step whose reward is below it is the first error")

    def metric_specs(self) -> list[str]:
        """Every metric the decision reads (thresholds, then compare), without repeats."""
        specs = [t.metric for t in self.thresholds] + ([self.compare.metric] if self.compare else [])
        return list(dict.fromkeys(specs))

    def metric_files(self) -> list[str]:
        """The metrics files the decision reads (gates first), without repeats."""
        return list(dict.fromkeys([*self.gates, *(split_metric(s)[0] for s in self.metric_specs())]))


@dataclass
class Decision:
    """Whether a version becomes champion; ``reasons`` say why not (empty when promoted)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    """What passed, in words (for logs and the run)."""
    values: dict[str, float] = field(default_factory=dict)
    """The candidate's value of every metric that resolved, by spec."""


@dataclass
class Champion:
    """The current champion version and the metric values it was promoted on."""

    version: str
    metrics: dict[str, float]


@dataclass
class Registration:
    """What :func:`register_model` did."""

    model_name: str
    version: str
    alias: str
    promoted: bool
    reasons: list[str]
    run_id: str
    model_uri: str

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "version": self.version, "alias": self.alias,
                "promoted": self.promoted, "reasons": list(self.reasons), "run_id": self.run_id,
                "model_uri": self.model_uri}


# --------------------------------------------------------------------------- reading metrics
def lookup(data: Any, dotted: str) -> Any:
    """``data[a][b]...`` for ``"a.b"``; a key may itself hold dots (``"f1@0.5"``). KeyError names the miss."""
    parts = dotted.split(".")
    node, i = data, 0
    while i < len(parts):
        if not isinstance(node, Mapping):
            raise KeyError(f"'{'.'.join(parts[:i])}' is a {type(node).__name__}, not an object")
        for j in range(len(parts), i, -1):  # longest key first
            key = ".".join(parts[i:j])
            if key in node:
                node, i = node[key], j
                break
        else:
            where = ".".join(parts[:i]) or "the top level"
            close = difflib.get_close_matches(parts[i], [str(k) for k in node], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {sorted(map(str, node))[:12]}"
            raise KeyError(f"no key '{parts[i]}' at {where}{hint}")
    return node


def metric_value(metrics: Mapping[str, Any], spec: str) -> float:
    """The number ``spec`` (``file:dotted.key``) names in ``metrics`` (file -> parsed JSON).

    Raises ValueError with a readable message: missing file or key, not a number, NaN.
    """
    file, key = split_metric(spec)
    data = metrics.get(file)
    if data is None:
        raise ValueError(f"{spec}: metrics file {file} is missing")
    try:
        value = lookup(data, key)
    except KeyError as exc:
        raise ValueError(f"{spec}: {exc.args[0]}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{spec}: {value!r} is not a number")
    if math.isnan(value):
        raise ValueError(f"{spec}: value is NaN")
    return float(value)


# ------------------------------------------------------------------------------ the decision
def _gate_reasons(file: str, data: Any) -> list[str]:
    if data is None:
        return [f"gate {file}: missing (its stage did not run, or its gate failed and stopped it)"]
    gate = data.get("gate") if isinstance(data, Mapping) else None
    if not isinstance(gate, Mapping):
        return [f"gate {file}: no 'gate' section (the great-expectations gate did not run)"]
    failed = gate.get("failed")
    if isinstance(failed, bool) or not isinstance(failed, (int, float)):
        return [f"gate {file}: 'gate.failed' is {failed!r}, not a count"]
    if failed != 0:
        first = gate.get("failures") or []
        head = first[0].get("message", "") if first and isinstance(first[0], Mapping) else (first[0] if first else "")
        detail = f": {str(head).splitlines()[0]}" if str(head).strip() else ""
        return [f"gate {file}: {failed:g} failed expectation(s){detail}"]
    return []


def promotion_decision(
    gates: Mapping[str, Any],
    metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, float] | None,
    cfg: RegisterConfig,
) -> Decision:
    """Decide whether a new version becomes champion.

    ``gates``: each metrics file of ``cfg.gates`` -> its parsed JSON (None or absent: missing).
    ``metrics``: metrics file -> parsed JSON, for the thresholds and ``compare``.
    ``champion_metrics``: the current champion's values by metric spec, None when there is none.
    """
    reasons: list[str] = []
    checks: list[str] = []
    values: dict[str, float] = {}

    for file in cfg.gates:
        found = _gate_reasons(file, gates.get(file))
        reasons += found
        if not found:
            checks.append(f"gate {file}: passed")

    unresolved: set[str] = set()

    def value(spec: str) -> float | None:
        if spec in values:
            return values[spec]
        if spec in unresolved:
            return None
        try:
            values[spec] = metric_value(metrics, spec)
        except ValueError as exc:
            unresolved.add(spec)
            reasons.append(str(exc))
            return None
        return values[spec]

    for t in cfg.thresholds:
        v = value(t.metric)
        if v is None:
            continue
        if _OPS[t.op](v, t.value):
            checks.append(f"{t.metric} = {v:g} {t.op} {t.value:g}")
        else:
            reasons.append(f"{t.metric} = {v:g} fails threshold {t.op} {t.value:g}")

    if cfg.compare is not None:
        c = cfg.compare
        v = value(c.metric)
        if v is not None:
            if champion_metrics is None:
                checks.append(f"{c.metric} = {v:g}: no champion yet")
            else:
                best = champion_metrics.get(c.metric)
                if best is None or math.isnan(best):
                    reasons.append(f"{c.metric}: the champion has no value for it, so it cannot be beaten")
                else:
                    need = best + c.min_delta if c.mode == "max" else best - c.min_delta
                    beats = v > need if c.mode == "max" else v < need
                    if beats:
                        checks.append(f"{c.metric} = {v:g} beats the champion's {best:g} (min_delta {c.min_delta:g})")
                    else:
                        word = "above" if c.mode == "max" else "below"
                        reasons.append(f"{c.metric} = {v:g} does not beat the champion's {best:g} "
                                       f"(needs {word} {need:g})")
    return Decision(promote=not reasons, reasons=reasons, checks=checks, values=values)


# ---------------------------------------------------------------------------- the MLflow part
def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    import mlflow

    from genprm import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    return mlflow.MlflowClient()


def champion_metrics(model_name: str, specs: Sequence[str] = (), client: Any = None) -> Champion | None:
    """The current ``champion`` version of ``model_name`` and its values of ``specs``, or None.

    Values come from the version's ``promotion.metrics`` tag (JSON), else its
    ``metric.<safe spec>`` tags, else the metrics of the run that logged it.
    """
    from mlflow.exceptions import MlflowException

    from genprm.tracking import safe_key

    client = _client(client)
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        # no such model, or no champion alias yet; any other error (an unreachable server) is
        # raised, so a failed look-up never reads as "no champion to beat"
        missing = exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))
        if missing:
            return None
        raise
    values: dict[str, float] = {}
    try:
        values.update({k: float(v) for k, v in json.loads(mv.tags.get("promotion.metrics", "{}")).items()})
    except (ValueError, TypeError, AttributeError):
        log.warning("%s v%s: unreadable promotion.metrics tag", model_name, mv.version)
    run_metrics = None
    for spec in specs:
        if spec in values:
            continue
        tag = mv.tags.get(f"metric.{safe_key(spec)}")
        if tag is not None:
            try:
                values[spec] = float(tag)
                continue
            except ValueError:
                pass
        if run_metrics is None:
            try:
                run_metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            except MlflowException:
                run_metrics = {}
        if safe_key(spec) in run_metrics:
            values[spec] = float(run_metrics[safe_key(spec)])
    return Champion(version=str(mv.version), metrics=values)


def _reasons_tag(reasons: Sequence[str]) -> str:
    text = "; ".join(reasons)
    return text if len(text) <= _REASONS_TAG_MAX else text[: _REASONS_TAG_MAX - 3] + "..."


def register_model(
    model_dir: str | os.PathLike | None,
    cfg: RegisterConfig,
    decision: Decision,
    *,
    log_model: Callable[..., Any],
    tags: Mapping[str, str] | None = None,
    champion: Champion | None = None,
    run_name: str = "register",
) -> Registration:
    """Register ``model_dir`` as a new version of ``cfg.model_name`` and alias it by ``decision``.

    Starts a run (:func:`genprm.tracking.start_run`; a child of the pipeline run, if any) with
    ``tags``, the register config as params and the decision's metric values; calls
    ``log_model(model_dir=model_dir, registered_model_name=cfg.model_name)`` inside it; then tags
    the new version (``tags``, ``promotion``, ``promotion.reasons``, ``promotion.checks``,
    ``promotion.metrics``, ``metric.<spec>``) and sets alias ``champion`` (promoted) or
    ``candidate`` (blocked). ``champion`` (the one judged against) is recorded as
    ``promotion.previous_champion``.
    """
    import mlflow

    from genprm import tracking

    status = "promoted" if decision.promote else "blocked"
    run_tags = {**dict(tags or {}), "genprm.kind": "register", "promotion": status}
    with tracking.start_run(run_name, tags=run_tags) as run:
        tracking.log_params({"register": cfg.model_dump(exclude={"verifier"}),
                             "model_dir": str(model_dir) if model_dir is not None else None})
        if decision.values:
            tracking.log_metrics(decision.values)
        tracking.log_metrics({"promoted": int(decision.promote), "promotion_reasons": len(decision.reasons)})
        mlflow.set_tag("promotion.reasons", _reasons_tag(decision.reasons))
        info = log_model(model_dir=model_dir, registered_model_name=cfg.model_name)
        run_id = run.info.run_id
    version = getattr(info, "registered_model_version", None)
    if version is None:
        raise RuntimeError(f"log_model did not register a version of {cfg.model_name!r} "
                           "(its ModelInfo has no registered_model_version)")
    version = str(version)
    client = mlflow.MlflowClient()
    version_tags = {
        **{k: str(v) for k, v in dict(tags or {}).items()},
        "promotion": status,
        "promotion.reasons": _reasons_tag(decision.reasons),
        "promotion.checks": _reasons_tag(decision.checks),
        "promotion.metrics": json.dumps(decision.values, sort_keys=True),
        "promotion.previous_champion": champion.version if champion else "none",
        **{f"metric.{tracking.safe_key(k)}": repr(v) for k, v in decision.values.items()},
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(cfg.model_name, version, tracking.safe_key(key), value)
    alias = CHAMPION if decision.promote else CANDIDATE
    client.set_registered_model_alias(cfg.model_name, alias, version)
    if decision.promote:
        log.info("%s v%s is the new champion (%s)", cfg.model_name, version, "; ".join(decision.checks) or "no checks")
    else:
        log.warning("%s v%s stays %s: %s", cfg.model_name, version, CANDIDATE, "; ".join(decision.reasons))
    return Registration(model_name=cfg.model_name, version=version, alias=alias, promoted=decision.promote,
                        reasons=list(decision.reasons), run_id=run_id, model_uri=str(getattr(info, "model_uri", "")))


def read_metrics_files(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """``{path: parsed JSON or None}`` (None: missing or unreadable, logged)."""
    out: dict[str, Any] = {}
    for p in paths:
        try:
            out[str(p)] = json.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            out[str(p)] = None
        except (OSError, ValueError) as exc:
            log.warning("metrics file %s unreadable: %s", p, exc)
            out[str(p)] = None
    return out


class MissingInputError(FileNotFoundError):
    """Files a stage reads are missing; the message names each and the stage that writes it."""

    def __init__(self, message: str, missing: Sequence[str]):
        super().__init__(message)
        self.missing = list(missing)

    def __str__(self) -> str:
        return self.args[0]


def require_inputs(paths: Sequence[str | os.PathLike], producers: Mapping[str, str] | None = None) -> None:
    """Raise :class:`MissingInputError` unless every path exists.

    ``producers`` maps an output path to the pipeline stage that writes it (e.g. from
    ``dvc.yaml``), so the message says what to run: ``metrics/synthesis.json is missing: run the
    `synthesis` stage first (dvc repro synthesis)``.
    """
    producers = {os.path.normpath(k): v for k, v in (producers or {}).items()}
    missing = list(dict.fromkeys(str(p) for p in paths if not Path(p).exists()))
    if not missing:
        return
    lines = []
    for path in missing:
        stage = producers.get(os.path.normpath(path))
        if stage:
            lines.append(f"{path} is missing: run the `{stage}` stage first (dvc repro {stage}).")
        else:
            lines.append(f"{path} is missing, and no pipeline stage writes it: check the path in the registry "
                         f"section (gates, thresholds, compare) or --model.")
    raise MissingInputError(" ".join(lines), missing)
