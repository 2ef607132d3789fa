"""Results across seeds and CPU kernel paths: the band of each headline metric, and per-run criteria.

A sweep (``make bands``: one DVC experiment per cell of seeds x kernel paths, see ``bench/bands.py``
and ``flows/bands.py``) gives each run's metrics files. This module turns them into
``metrics/bands.json``; it knows no DVC, no Prefect:

- :data:`HEADLINE`: the headline metrics, each a name and a source ``"<metrics file stem>:<dotted key>"``;
- :func:`lookup`: one value from a run's metrics files by source (``*`` in a key segment: the largest
  value among the matching keys, e.g. ``maj@*`` whatever N is; ``-1``: a list's last item;
  ``{labels.epsilon}``: a value of the run's params);
- :func:`band`: min / median / max;
- :data:`CRITERIA` and :func:`check`: the acceptance rules every run must meet;
- :func:`collect`: all of it as one JSON-ready dict (the shape of ``metrics/bands.json``);
- :func:`compare` and :func:`format_table`: one run's numbers beside the committed bands (``genprm bands
  compare``, the end of ``make demo``);
- :func:`plot_bands`: one panel per headline metric, a dot per run coloured by kernel path, the band shaded;
- :func:`log_runs`: one MLflow parent run for the sweep, one child run per cell;
- :func:`add_parser`: the ``genprm bands compare`` command.

A run is a dict ``{"seed", "kernel_path", "name", "metrics": {stem: data}, "params": {...}}``.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Metric",
    "Criterion",
    "HEADLINE",
    "CRITERIA",
    "lookup",
    "resolve_source",
    "band",
    "check",
    "collect",
    "read_metrics_dir",
    "compare",
    "format_table",
    "plot_bands",
    "log_runs",
    "add_parser",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """A headline metric: ``source`` is ``"<metrics file stem>:<dotted key>"`` (see :func:`lookup`)."""

    name: str
    source: str


HEADLINE: tuple[Metric, ...] = (
    Metric("policy accuracy", "policy:eval.accuracy"),
    Metric("policy first-error arithmetic share", "policy:eval.first_error_share.arithmetic"),
    Metric("ProcessBench F1 Pass@1", "processbench:pass@1.average_f1"),
    Metric("ProcessBench F1 Maj@N", "processbench:maj@*.average_f1"),
    Metric("ProcessBench copy-error detection", "processbench:pass@1.error_acc_by_kind.copy.error_acc"),
    Metric("Best-of-8 majority", "best_of_n:curves.majority.8"),
    Metric("Best-of-8 PRM-Min", "best_of_n:curves.prm_min.8"),
    Metric("Best-of-8 best PRM aggregation", "best_of_n:curves.prm_*.8"),
    Metric("Best-of-8 pass@8", "best_of_n:curves.pass_at_k.8"),
    Metric("critic last turn", "critic:accuracy.critic.-1"),
    Metric("self-refinement last turn", "critic:accuracy.self.-1"),
    Metric("labels RPE F1", "labels:quality.rpe@{labels.epsilon}.f1"),
    Metric("synthesis kept conversations", "synthesis:consensus.kept"),
)
"""The numbers a newcomer compares (README "Results across seeds and kernel paths")."""


def _param(params: Mapping[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def resolve_source(source: str, params: Mapping[str, Any] | None = None) -> str:
    """``source`` with ``{dotted.param}`` filled in from ``params`` (unchanged where a param is missing)."""
    if "{" not in source:
        return source
    out, rest = [], source
    while "{" in rest and "}" in rest.split("{", 1)[1]:
        head, tail = rest.split("{", 1)
        key, rest = tail.split("}", 1)
        value = _param(params or {}, key)
        out.append(head + (str(value) if value is not None else "{" + key + "}"))
    return "".join(out) + rest


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def lookup(metrics: Mapping[str, Any], source: str, params: Mapping[str, Any] | None = None) -> float | None:
    """The number at ``source`` (``"stem:dotted.key"``) in ``metrics`` (``{stem: data}``), None if absent.

    A key segment with ``*`` matches keys by glob and gives the largest number among them; an
    integer segment indexes a list (``-1``: the last item); ``{x.y}`` is a value of ``params``.
    A number after ``@`` keeps its dot (``quality.rpe@0.8.f1`` has the segments ``quality``, ``rpe@0.8``, ``f1``).
    """
    stem, _, key = resolve_source(source, params).partition(":")
    data = metrics.get(stem)
    if data is None or not key:
        return None
    candidates = [data]
    parts = _split_key(key)
    for part in parts:
        nxt = []
        for node in candidates:
            if isinstance(node, Mapping):
                if "*" in part:
                    nxt += [v for k, v in node.items() if fnmatch.fnmatchcase(str(k), part)]
                elif part in node:
                    nxt.append(node[part])
            elif isinstance(node, list):
                try:
                    nxt.append(node[int(part)])
                except (ValueError, IndexError):
                    pass
        candidates = nxt
    numbers = [n for n in map(_number, candidates) if n is not None]
    return max(numbers) if numbers else None


def _split_key(key: str) -> list[str]:
    """Dotted key -> segments; a dot followed by a digit after ``@`` belongs to the number (``rpe@0.8``)."""
    parts: list[str] = []
    for piece in key.split("."):
        if parts and piece[:1].isdigit() and "@" in parts[-1] and parts[-1].rsplit("@", 1)[1].lstrip("-").isdigit():
            parts[-1] += "." + piece
        else:
            parts.append(piece)
    return parts


def band(values: Iterable[float | None]) -> dict[str, float | None]:
    """``{"min", "median", "max"}`` of the numbers in ``values`` (None ignored; all None without any)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return {"min": None, "median": None, "max": None}
    return {"min": xs[0], "median": statistics.median(xs), "max": xs[-1]}


@dataclass(frozen=True)
class Criterion:
    """An acceptance rule of one run: ``value(values, params)`` (None: not measurable) and ``ok(value)``."""

    name: str
    rule: str
    value: Callable[[Mapping[str, float | None], Mapping[str, Any]], float | None]
    ok: Callable[[float], bool]


def _diff(a: str, b: str, offset: Callable[[Mapping[str, Any]], float | None] | None = None):
    def value(values: Mapping[str, float | None], params: Mapping[str, Any]) -> float | None:
        x, y = values.get(a), values.get(b) if b else 0.0
        if x is None or y is None:
            return None
        shift = offset(params) if offset else 0.0
        return None if shift is None else x - y - shift
    return value


def _expected_accuracy(params: Mapping[str, Any]) -> float | None:
    share = _number(_param(params, "policy.error_share"))
    return None if share is None else 1.0 - share


CRITERIA: tuple[Criterion, ...] = (
    Criterion("policy accuracy", "policy accuracy - (1 - policy.error_share) within ±0.05",
              _diff("policy accuracy", "", _expected_accuracy), lambda v: abs(v) <= 0.05 + 1e-9),
    Criterion("first-error arithmetic share",
              "policy first-error arithmetic share - policy.arithmetic_share within ±0.1",
              _diff("policy first-error arithmetic share", "",
                    lambda p: _number(_param(p, "policy.arithmetic_share"))), lambda v: abs(v) <= 0.1 + 1e-9),
    Criterion("ProcessBench Pass@1", "ProcessBench F1 Pass@1 >= 85",
              _diff("ProcessBench F1 Pass@1", ""), lambda v: v >= 85),
    Criterion("ProcessBench Maj@N", "ProcessBench F1 Maj@N - Pass@1 >= -0.5",
              _diff("ProcessBench F1 Maj@N", "ProcessBench F1 Pass@1"), lambda v: v >= -0.5 - 1e-9),
    Criterion("Best-of-8 best PRM", "Best-of-8 best PRM aggregation - majority >= 5",
              _diff("Best-of-8 best PRM aggregation", "Best-of-8 majority"), lambda v: v >= 5 - 1e-9),
    Criterion("Best-of-8 PRM-Min", "Best-of-8 PRM-Min - majority >= 0",
              _diff("Best-of-8 PRM-Min", "Best-of-8 majority"), lambda v: v >= -1e-9),
    Criterion("critic", "critic last turn - self-refinement last turn >= 10",
              _diff("critic last turn", "self-refinement last turn"), lambda v: v >= 10 - 1e-9),
)
"""The acceptance criteria of the bands, checked on every run of the sweep."""


def _cell(run: Mapping[str, Any]) -> dict[str, Any]:
    return {"seed": run["seed"], "kernel_path": run["kernel_path"]}


def run_values(run: Mapping[str, Any], metrics: Sequence[Metric] = HEADLINE) -> dict[str, float | None]:
    """``{metric name: value}`` of one run (None where its metrics files lack the key)."""
    return {m.name: lookup(run.get("metrics") or {}, m.source, run.get("params")) for m in metrics}


def check(values: Mapping[str, float | None], params: Mapping[str, Any],
          criteria: Sequence[Criterion] = CRITERIA) -> dict[str, dict[str, Any]]:
    """``{criterion: {"value", "ok"}}`` for one run; a value that cannot be computed is not ok."""
    out = {}
    for c in criteria:
        v = c.value(values, params)
        out[c.name] = {"value": None if v is None else round(v, 6), "ok": v is not None and bool(c.ok(v))}
    return out


def collect(runs: Sequence[Mapping[str, Any]], metrics: Sequence[Metric] = HEADLINE,
            criteria: Sequence[Criterion] = CRITERIA) -> dict[str, Any]:
    """The ``metrics/bands.json`` dict of ``runs``: the runs, each headline metric's values and band,
    each criterion's verdict per run and whether all runs held it."""
    runs = sorted(runs, key=lambda r: (r["seed"], str(r["kernel_path"])))
    per_run = [run_values(r, metrics) for r in runs]
    out: dict[str, Any] = {"runs": [{**_cell(r), "name": r.get("name")} for r in runs], "metrics": {}, "criteria": {}}
    for m in metrics:
        params = next((r.get("params") for r in runs if r.get("params")), None)
        values = [{**_cell(r), "value": v[m.name]} for r, v in zip(runs, per_run, strict=True)]
        out["metrics"][m.name] = {"source": resolve_source(m.source, params), "values": values,
                                  **band(x["value"] for x in values)}
    for c in criteria:
        held = []
        for r, v in zip(runs, per_run, strict=True):
            verdict = check(v, r.get("params") or {}, [c])[c.name]
            held.append({**_cell(r), **verdict})
        out["criteria"][c.name] = {"rule": c.rule, "held": held, "ok_runs": sum(h["ok"] for h in held),
                                   "runs": len(held), "all_ok": bool(held) and all(h["ok"] for h in held)}
    return out


def read_metrics_dir(folder: str | os.PathLike) -> dict[str, Any]:
    """Every ``<folder>/*.json`` as ``{stem: data}`` (unreadable files are logged and skipped)."""
    import json

    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
    return out


def compare(bands: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric of ``bands``: this run's value (read by the band's own source) and whether it is inside.

    ``inside`` is None when this run or the band has no value.
    """
    rows = []
    for name, entry in bands.get("metrics", {}).items():
        value = lookup(metrics, entry["source"])
        lo, hi = entry.get("min"), entry.get("max")
        inside = None if value is None or lo is None or hi is None else lo - 1e-9 <= value <= hi + 1e-9
        rows.append({"metric": name, "value": value, "min": lo, "max": hi, "inside": inside})
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() and abs(x) >= 10:
        return str(int(x))
    return f"{x:.4g}" if abs(x) < 10 else f"{x:.1f}"


def format_table(rows: Sequence[Mapping[str, Any]], n_runs: int | None = None) -> str:
    """``metric | this run | band (min–max) | inside?`` as aligned text, with a verdict line after it."""
    head = ("metric", "this run", "band (min–max)", "inside?")
    body = [(r["metric"], _fmt(r["value"]), f"{_fmt(r['min'])} – {_fmt(r['max'])}",
             {True: "yes", False: "OUTSIDE", None: "n/a"}[r["inside"]]) for r in rows]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    outside = [r["metric"] for r in rows if r["inside"] is False]
    runs = f" of {n_runs} runs" if n_runs else ""
    if outside:
        lines += ["", f"{len(outside)} metric(s) outside the band{runs}: {', '.join(outside)}.",
                  "Outside the band means this run differs from every run of the committed sweep (seeds x kernel "
                  "paths): the code, params.yaml or the machine changed something the seed and the kernel path "
                  "alone do not explain. Check `git diff`, `dvc params diff` and the stage logs; a band can also "
                  "simply be narrow (few runs)."]
    elif any(r["inside"] is None for r in rows):
        lines += ["", f"Every metric measured is inside the band{runs}; '-' / n/a: not measured here or in the band."]
    else:
        lines += ["", f"Every headline metric is inside the band{runs}."]
    return "\n".join(lines)


KERNEL_COLOURS = {"native": "tab:blue", "avx2": "tab:orange"}


def plot_bands(bands: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``path`` (PNG): one panel per headline metric, each run a dot at its seed coloured by kernel
    path, the band (min–max) shaded and its median dashed. Metrics without values get an empty panel."""
    from genprm.evaluation.plots import _figure, _save

    plt = _figure()
    names = list(bands.get("metrics", {}))
    if not names:
        raise ValueError("bands have no metrics to plot")
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    paths = sorted({r["kernel_path"] for r in bands.get("runs", [])}, key=lambda p: (p != "native", p))
    offsets = {p: (i - (len(paths) - 1) / 2) * 0.15 for i, p in enumerate(paths)}
    for ax, name in zip(axes.flat, names, strict=False):
        entry = bands["metrics"][name]
        if entry.get("min") is not None:
            ax.axhspan(entry["min"], entry["max"], color="0.85", zorder=0)
            ax.axhline(entry["median"], color="0.4", ls="--", lw=1, zorder=1)
        for p in paths:
            pts = [(v["seed"] + offsets[p], v["value"]) for v in entry["values"]
                   if v["kernel_path"] == p and v["value"] is not None]
            if pts:
                ax.scatter(*zip(*pts, strict=True), s=22, zorder=2, label=p, color=KERNEL_COLOURS.get(p))
        ax.set_title(name, fontsize=8)
        ax.set_xticks(sorted({v["seed"] for v in entry["values"]}))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("seed", fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, title="kernel path", loc="lower right", fontsize=8)
    fig.suptitle("Headline metrics across seeds and kernel paths (band: min–max, dashed: median)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def log_runs(bands: Mapping[str, Any], *, artifacts: Sequence[str | os.PathLike] = (), name: str = "bands",
             uri: str | None = None, experiment: str | None = None) -> str:
    """Log the sweep to MLflow: one parent run (band min/median/max per metric, criteria held by all,
    ``artifacts`` such as bands.json and the plot) with one child run per cell (seed, kernel path and
    experiment name as params; its headline values and criteria as metrics). Returns the parent's id."""
    import mlflow

    from genprm import tracking

    def key(text: str) -> str:
        return tracking.safe_key(text.replace(" ", "_"))

    experiment = experiment or tracking.DEFAULT_EXPERIMENT
    with tracking.pipeline_run(name, tags={"genprm.kind": "bands", "runs": str(len(bands.get("runs", [])))},
                               uri=uri, experiment=experiment) as parent:
        for m, entry in bands.get("metrics", {}).items():
            tracking.log_metrics({f"{key(m)}.{k}": entry[k] for k in ("min", "median", "max")
                                  if entry.get(k) is not None})
        tracking.log_metrics({f"criteria.{key(c)}.all_ok": float(e["all_ok"])
                              for c, e in bands.get("criteria", {}).items()})
        for run in bands.get("runs", []):
            cell = (run["seed"], run["kernel_path"])
            with tracking.start_run(run.get("name") or f"seed{cell[0]}-{cell[1]}", experiment=experiment,
                                    tags={"genprm.kind": "bands-run"}):
                tracking.log_params({"seed": cell[0], "kernel_path": cell[1], "experiment": run.get("name")})
                tracking.log_metrics({key(m): v["value"] for m, e in bands["metrics"].items() for v in e["values"]
                                      if (v["seed"], v["kernel_path"]) == cell and v["value"] is not None})
                tracking.log_metrics({f"criteria.{key(c)}.ok": float(h["ok"]) for c, e in bands["criteria"].items()
                                      for h in e["held"] if (h["seed"], h["kernel_path"]) == cell})
        for path in artifacts:
            if Path(path).exists():
                tracking.log_artifact(path)
        run_id = parent.info.run_id
        mlflow.set_tag("genprm.bands.all_ok", str(all(e["all_ok"] for e in bands.get("criteria", {}).values())))
    return run_id


def _cmd_compare(args: Any) -> int:
    import json

    bands_path, metrics_dir = Path(args.bands), Path(args.metrics)
    if not bands_path.is_file():
        print(f"No bands yet: {bands_path} does not exist. Run `make bands` (one pipeline run per seed and kernel "
              "path, about 6 x `dvc repro`) and commit metrics/bands.json to compare runs against it.")
        return 0
    bands = json.loads(bands_path.read_text(encoding="utf-8"))
    metrics = read_metrics_dir(metrics_dir)
    if not metrics:
        print(f"No metrics in {metrics_dir}: run the pipeline first (`dvc repro`).")
        return 0
    n = len(bands.get("runs", []))
    cells = sorted({r["kernel_path"] for r in bands.get("runs", [])}, key=lambda p: (p != "native", p))
    seeds = sorted({r["seed"] for r in bands.get("runs", [])})
    print(f"This run ({metrics_dir}) beside the committed bands ({bands_path}: {n} runs, seeds {seeds}, "
          f"kernel paths {cells}):\n")
    print(format_table(compare(bands, metrics), n))
    return 0


def add_parser(subparsers: Any) -> Any:
    """Register ``genprm bands compare``: this run's headline numbers beside the committed bands (always exit 0)."""
    p = subparsers.add_parser("bands", help="results across seeds and kernel paths (metrics/bands.json)")
    bsub = p.add_subparsers(dest="bands_command", required=True)
    c = bsub.add_parser(
        "compare", help="print this run's headline metrics beside the bands: metric | this run | band | inside?",
        description="Informs, never fails: exits 0 even when a metric is outside the band or no bands exist.",
    )
    c.add_argument("--bands", default="metrics/bands.json", help="the sweep's bands (default: metrics/bands.json)")
    c.add_argument("--metrics", default="metrics", help="folder of this run's metrics files (default: metrics)")
    c.set_defaults(func=_cmd_compare)
    return p
