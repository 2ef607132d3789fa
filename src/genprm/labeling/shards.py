"""Resumable, parallel work in shards: run the missing ones, then merge them in order.

A stage's items (problems, in input order) are cut into shards of ``shard_size`` consecutive
items. Shard i is written atomically as ``<dir>/<stage>-0000i.jsonl`` (records), after its
``<dir>/<stage>-0000i.json`` (counts); the ``.jsonl`` marks the shard done. So a run killed at
any point resumes by doing only the shards whose ``.jsonl`` is missing.

Workers (processes or machines sharing the folder) pick shards with
``shard_index`` / ``num_shards``: worker i does the shards s with ``s % num_shards == i``.
A shard's content depends only on its items and the seed, never on the worker.
``<dir>/<stage>-manifest.json`` holds a fingerprint of the stage's config and inputs; a
folder left by a different config is cleared (with a warning) before work starts.
:func:`merge_shards` checks that every shard exists and concatenates them in shard order.

Use::

    run_shards(shard_dir, "rollout", n_items, shard_size, work, fingerprint=fp)
    records, stats = merge_shards(shard_dir, "rollout", n_items, shard_size, Solution)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from genprm.records import Record, read_records, write_json, write_records

__all__ = [
    "ShardError",
    "shard_ranges",
    "select_shards",
    "shard_path",
    "fingerprint",
    "folder_stamp",
    "prepare_dir",
    "run_shards",
    "merge_shards",
    "sum_stats",
]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)


class ShardError(RuntimeError):
    """Shards are missing or were made by another configuration."""


def shard_ranges(n_items: int, shard_size: int) -> list[range]:
    """Consecutive item ranges of ``shard_size`` (the last may be shorter); none for no items."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [range(s, min(s + shard_size, n_items)) for s in range(0, n_items, shard_size)]


def select_shards(n_shards: int, shard_index: int = 0, num_shards: int = 1) -> list[int]:
    """The shards worker ``shard_index`` of ``num_shards`` does: ``s % num_shards == shard_index``."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index} and {num_shards}")
    return [s for s in range(n_shards) if s % num_shards == shard_index]


def shard_path(shard_dir: str | Path, stage: str, index: int, suffix: str = ".jsonl") -> Path:
    return Path(shard_dir) / f"{stage}-{index:05d}{suffix}"


def fingerprint(config: Any, *files: str | Path) -> str:
    """SHA-256 of a JSON-able config and the bytes of input files."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for f in files:
        h.update(b"\x00")
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def folder_stamp(path: str | Path, full_below: int = 64 << 20) -> str | None:
    """A content stamp of a local model folder (None when ``path`` is no folder, e.g. a Hub id).

    Files up to ``full_below`` bytes are hashed whole; larger ones by size and their first
    and last MiB. Machine-independent (no mtimes), so workers on several machines agree.
    """
    root = Path(path)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root)}\x00{size}\x00".encode())
        with open(f, "rb") as fh:
            if size <= full_below:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return h.hexdigest()


def prepare_dir(shard_dir: str | Path, stage: str, fp: str, n_items: int, shard_size: int) -> None:
    """Create the folder; clear this stage's shards if they were made by another fingerprint."""
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    manifest = shard_dir / f"{stage}-manifest.json"
    want = {"fingerprint": fp, "items": n_items, "shard_size": shard_size}
    if manifest.exists():
        have = json.loads(manifest.read_text(encoding="utf-8"))
        if have == want:
            return
        stale = sorted(shard_dir.glob(f"{stage}-[0-9]*.json*"))
        log.warning("%s: shards of another config or input; removing %d stale files", shard_dir, len(stale))
        for f in stale:
            f.unlink()
    write_json(manifest, want)


def run_shards(
    shard_dir: str | Path,
    stage: str,
    n_items: int,
    shard_size: int,
    work: Callable[[int, range], tuple[Sequence[Record], dict]],
    *,
    fingerprint: str,
    shard_index: int = 0,
    num_shards: int = 1,
) -> dict:
    """Run ``work(shard, items)`` for each selected shard whose output is missing.

    ``work`` returns the shard's records and a JSON-able stats dict. Returns counts of shards
    done now and found done.
    """
    from genprm.logs import progress

    prepare_dir(shard_dir, stage, fingerprint, n_items, shard_size)
    ranges = shard_ranges(n_items, shard_size)
    mine = select_shards(len(ranges), shard_index, num_shards)
    todo = [s for s in mine if not shard_path(shard_dir, stage, s).exists()]
    log.info("%s: %d shards in all, %d for this worker, %d to do", stage, len(ranges), len(mine), len(todo))
    for s in progress(todo, desc=f"{stage} shards", unit="shard"):
        records, stats = work(s, ranges[s])
        write_json(shard_path(shard_dir, stage, s, ".json"), stats)
        write_records(shard_path(shard_dir, stage, s), records)
    return {"shards": len(ranges), "selected": len(mine), "done_now": len(todo), "done_before": len(mine) - len(todo)}


def merge_shards(
    shard_dir: str | Path, stage: str, n_items: int, shard_size: int, cls: type[R]
) -> tuple[list[R], list[dict]]:
    """All shards' records in shard order, and their stats; :class:`ShardError` if any is missing."""
    n = len(shard_ranges(n_items, shard_size))
    missing = [s for s in range(n) if not shard_path(shard_dir, stage, s).exists()]
    if missing:
        shown = ", ".join(shard_path(shard_dir, stage, s).name for s in missing[:10])
        raise ShardError(f"{stage}: {len(missing)} of {n} shards missing in {shard_dir}: {shown}")
    records: list[R] = []
    stats: list[dict] = []
    for s in range(n):
        records.extend(read_records(shard_path(shard_dir, stage, s), cls))
        stats.append(json.loads(shard_path(shard_dir, stage, s, ".json").read_text(encoding="utf-8")))
    return records, stats


def sum_stats(stats: Sequence[dict]) -> dict:
    """Sum the numeric fields of per-shard stats (lists are concatenated, rates recomputed)."""
    out: dict[str, Any] = {}
    for st in stats:
        for k, v in st.items():
            if isinstance(v, bool):
                out[k] = v
            elif isinstance(v, (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, list):
                out[k] = out.get(k, []) + v
    for k in ("seconds", "engine_seconds"):
        if k in out:
            out[k] = round(out[k], 3)
    if out.get("engine_seconds"):
        out["completions_per_s"] = round(out.get("completions", 0) / out["engine_seconds"], 2)
    return out
