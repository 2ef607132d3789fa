"""Where a dataset's rows come from: a local file or folder, or the Hugging Face Hub.

A ``source`` that exists on disk is read locally; one that looks like a path (absolute,
``./``/``../``/``~``, a trailing slash, more than one ``/`` or a data-file suffix) but does
not exist raises :class:`FileNotFoundError` without touching the network; anything else is
a Hub id handed to ``datasets.load_dataset`` (imported lazily).

Every row comes out as a :class:`Row` carrying its origin and 1-based position (JSONL
line, JSON array element, parquet/dataset row), so loaders can raise
:class:`genprm.records.RecordError` naming file, line and field.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genprm.records import RecordError

__all__ = ["Row", "is_local_source", "read_file_rows", "dataset_rows", "hub_rows", "open_rows"]

logger = logging.getLogger(__name__)

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".csv")


@dataclass(frozen=True)
class Row:
    """One raw row and where it came from (``line`` is 1-based)."""

    origin: str
    line: int
    data: Any


def is_local_source(source: str | os.PathLike) -> bool:
    """True if ``source`` exists on disk or looks like a path rather than a Hub id."""
    if isinstance(source, Path):
        return True
    text = os.fspath(source)
    if Path(text).expanduser().exists():
        return True
    return (
        text.startswith(("/", ".", "~"))
        or text.endswith(("/", os.sep))
        or "\\" in text
        or text.count("/") > 1
        or text.lower().endswith(_FILE_SUFFIXES)
    )


def read_file_rows(path: Path) -> Iterator[Row]:
    """Rows of a ``.jsonl`` (by line), ``.json`` array (by element) or ``.parquet`` file."""
    suffix = path.suffix.lower()
    origin = str(path)
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise RecordError(origin, lineno, "<json>", f"invalid JSON: {exc.msg}") from None
                yield Row(origin, lineno, data)
    elif suffix == ".json":
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise RecordError(
                    origin, 0, "<json>", f"invalid JSON at text line {exc.lineno}, column {exc.colno}: {exc.msg}"
                ) from None
        if not isinstance(data, list):
            raise RecordError(origin, 0, "<json>", f"expected a JSON array of rows, got {type(data).__name__}")
        for i, item in enumerate(data, start=1):
            yield Row(origin, i, item)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, item in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield Row(origin, i, item)
    else:
        raise ValueError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json or .parquet)")


def dataset_rows(ds: Any, origin: str) -> Iterator[Row]:
    """Rows of a ``datasets.Dataset`` (numbered from 1)."""
    for i, item in enumerate(ds, start=1):
        yield Row(origin, i, item)


def hub_rows(source: str, split: str, configs: Sequence[str] = ()) -> Iterator[Row]:
    """Rows of ``split`` of ``source`` via ``datasets.load_dataset``, configs concatenated in order.

    ``source`` is a Hub id or a local folder holding data files in the Hub's layout.
    """
    import datasets

    for config in configs or (None,):
        where = f"{source}" + (f" ({config})" if config else "")
        logger.info("loading %s split %r with datasets.load_dataset", where, split)
        ds = datasets.load_dataset(source, config, split=split)
        yield from dataset_rows(ds, f"{where}:{split}")


def _saved_dataset_rows(folder: Path, split: str) -> Iterator[Row]:
    """Rows of a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    import datasets

    ds = datasets.load_from_disk(str(folder))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise FileNotFoundError(f"{folder}: saved dataset has no split {split!r} (has: {', '.join(ds)})")
        ds = ds[split]
    return dataset_rows(ds, f"{folder}:{split}")


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _has_split_files(folder: Path, split: str) -> bool:
    """True if a data file under ``folder`` names ``split`` (``data/test-0000.parquet``, ``train/x.json``)."""
    token = re.compile(rf"(?<![a-z0-9]){re.escape(split.lower())}(?![a-z0-9])")
    return any(
        p.is_file() and p.suffix.lower() in _DATA_SUFFIXES and token.search(p.relative_to(folder).as_posix().lower())
        for p in folder.rglob("*")
    )


def open_rows(
    source: str | os.PathLike,
    *,
    file_names: Sequence[str],
    hub_split: str,
    hub_configs: Sequence[str] = (),
) -> Iterator[Row]:
    """Rows from ``source``, resolved in this order.

    1. a file: read it;
    2. a folder holding one of ``file_names`` (relative paths, first hit wins): read that;
    3. a folder written by ``save_to_disk``: its ``hub_split``;
    4. a folder with data files named after ``hub_split`` (a Hub snapshot such as
       ``data/test-00000-of-00001.parquet``): ``load_dataset(folder, split=hub_split)``;
    5. not on disk and not path-like: the Hub id ``source`` (with ``hub_configs``).
    """
    if not is_local_source(source):
        return hub_rows(os.fspath(source), hub_split, hub_configs)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder (a local path, so the Hub was not tried)")
    if path.is_file():
        return read_file_rows(path)
    for name in file_names:
        candidate = path / name
        if candidate.is_file():
            return read_file_rows(candidate)
    if _is_saved_dataset(path):
        return _saved_dataset_rows(path, hub_split)
    if _has_split_files(path, hub_split):
        return hub_rows(str(path), hub_split)
    raise FileNotFoundError(
        f"{path}: no data found (looked for {', '.join(file_names)}, a saved dataset,"
        f" or data files named after split {hub_split!r})"
    )
