"""Stage-side MLflow logging: one child run per DVC stage, with its lineage as tags.

Every stage script ends with one call, after its outputs are written::

    from lineage import log_stage_run          # stages/ is on sys.path when run as `python stages/X.py`

    log_stage_run("labels", cfg.model_dump(), [args.metrics], inputs=[args.values, args.solutions])

The run (:func:`genprm.tracking.start_run`, so a child of the pipeline run of
``genprm track -- dvc repro`` or of the Prefect flow) gets the params (flattened), the numeric
leaves of the metrics JSON files (flattened, ``pass@1`` -> ``pass_at_1``), the stage's ``timings``
(its durations, which stay out of the DVC-tracked metrics files: ``genprm.logs.write_report``) as
metrics under their own names, the metrics files and ``artifacts`` as artifacts, and these tags
(:func:`lineage_tags`):

``genprm.stage``, ``genprm.kind=stage``, ``genprm.git_commit``
    the stage name, and ``git rev-parse HEAD`` (``unknown`` outside git).
``dvc.dep.<path>`` / ``dvc.out.<path>``
    the md5 of every dep and out that ``dvc.yaml`` lists for the stage, computed the way DVC 3
    computes them (a file's md5; a folder's ``<md5 of its listing>.dir``). They equal what
    ``dvc repro`` writes into ``dvc.lock`` for this run: DVC writes the stage's lock entry only
    after the command exits, so the entry present while the stage runs describes the previous
    run and is not read.
``data.in.<path>`` and ``data.md5``
    the md5 of each data file or folder the stage read (``inputs``) and one md5 over all of them.

Hashing reads every byte of the listed paths; ``GENPRM_LINEAGE_HASH=0`` skips it (paths are
still tagged, with value ``skipped``). ``GENPRM_TRACKING=0`` turns stage runs off entirely (the
test suite does that by default). A tracking failure is logged and the stage still succeeds:
its outputs are written before this runs. ``GENPRM_TRACKING_STRICT=1`` re-raises instead.

This module reads ``dvc.yaml`` (plain YAML) and knows DVC's hashing; the library does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from genprm import tracking

__all__ = ["file_md5", "path_md5", "stage_paths", "lineage_tags", "log_stage_run", "tracking_enabled"]

log = logging.getLogger("stages.lineage")

_CHUNK = 1 << 20
_OFF = {"0", "false", "no", "off"}


def tracking_enabled() -> bool:
    """False when ``GENPRM_TRACKING`` is 0/false/no/off."""
    return os.environ.get("GENPRM_TRACKING", "1").strip().lower() not in _OFF


def _hashing_enabled() -> bool:
    return os.environ.get("GENPRM_LINEAGE_HASH", "1").strip().lower() not in _OFF


def file_md5(path: str | os.PathLike) -> str:
    """md5 of a file's bytes (DVC 3's file hash)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def path_md5(path: str | os.PathLike) -> str | None:
    """DVC 3's hash of a file or folder (``<md5>.dir`` over the sorted listing), None if missing."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        return None
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in (".git", ".dvc")]
        for name in files:
            f = Path(root) / name
            entries.append({"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def stage_paths(stage: str, dvc_yaml: str | os.PathLike = "dvc.yaml") -> tuple[list[str], list[str]]:
    """``(deps, outs)`` of ``stage`` in ``dvc_yaml`` (outs include metrics and plots); empty if absent."""
    path = Path(dvc_yaml)
    if not path.is_file():
        return [], []
    spec = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage)
    if not spec:
        return [], []

    def names(entries: Iterable[Any]) -> list[str]:
        return [next(iter(e)) if isinstance(e, Mapping) else str(e) for e in entries or []]

    outs = names(spec.get("outs")) + names(spec.get("metrics")) + names(spec.get("plots"))
    return names(spec.get("deps")), outs


def _hash_or_skip(path: str) -> str:
    if not _hashing_enabled():
        return "skipped"
    return path_md5(path) or "missing"


def lineage_tags(
    stage: str,
    inputs: Sequence[str | os.PathLike] = (),
    *,
    dvc_yaml: str | os.PathLike = "dvc.yaml",
) -> dict[str, str]:
    """The lineage tags of a stage run (see the module docstring), computed now."""
    tags = {"genprm.stage": stage, "genprm.kind": "stage", "genprm.git_commit": tracking.git_commit()}
    deps, outs = stage_paths(stage, dvc_yaml)
    cache: dict[str, str] = {}

    def digest_of(p: str) -> str:  # a path both listed in dvc.yaml and read is hashed once
        key = os.path.normpath(p)
        if key not in cache:
            cache[key] = _hash_or_skip(p)
        return cache[key]

    for kind, paths in (("dep", deps), ("out", outs)):
        for p in paths:
            tags[tracking.safe_key(f"dvc.{kind}.{p}")] = digest_of(p)
    combined = hashlib.md5()
    for p in sorted(str(x) for x in inputs):
        digest = digest_of(p)
        tags[tracking.safe_key(f"data.in.{p}")] = digest
        combined.update(f"{p}\0{digest}\n".encode())
    if inputs:
        tags["data.md5"] = combined.hexdigest() if _hashing_enabled() else "skipped"
    return tags


def _read_json(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("metrics file %s not logged: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def log_stage_run(
    stage: str,
    params: Mapping[str, Any] | None = None,
    metrics_paths: Sequence[str | os.PathLike] = (),
    artifacts: Sequence[str | os.PathLike] = (),
    extra_tags: Mapping[str, str] | None = None,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    series: Mapping[str, Iterable[tuple[int, float]]] | None = None,
    timings: Mapping[str, Any] | None = None,
    dvc_yaml: str | os.PathLike = "dvc.yaml",
) -> str | None:
    """Log one stage run (params, metrics files, timings, artifacts, ``series`` curves, lineage tags); return its id.

    With several metrics files, each file's keys are prefixed by its stem (``labels.gate.failed``).
    ``timings`` (``{"seconds": 4.2, "train": {"train_seconds": 3.9}}``) are logged as metrics, nested
    keys dotted (``train.train_seconds``).
    Returns None when tracking is off or failed (the failure is logged, the stage goes on).
    """
    if not tracking_enabled():
        return None
    try:
        tags = {**lineage_tags(stage, inputs, dvc_yaml=dvc_yaml), **dict(extra_tags or {})}
        with tracking.start_run(stage, tags=tags) as run:
            if params:
                tracking.log_params(params)
            for path in metrics_paths:
                data = _read_json(path)
                tracking.log_metrics({Path(path).stem: data} if len(metrics_paths) > 1 else data)
            if timings:
                tracking.log_metrics(dict(timings))
            for name, points in (series or {}).items():
                tracking.log_series(name, points)
            for path in [*metrics_paths, *artifacts]:
                if Path(path).exists():
                    tracking.log_artifact(path)
            return run.info.run_id
    except Exception:
        if os.environ.get("GENPRM_TRACKING_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}:
            raise
        log.exception("MLflow logging of stage %s failed; the stage's outputs are written and kept", stage)
        return None
