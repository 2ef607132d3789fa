"""Logging set-up and progress bars shared by stages, flows and the CLI.

The library only calls ``logging.getLogger(__name__)``; entry points call
:func:`setup_logging` once. :func:`progress` wraps ``tqdm``: bars go to stderr, are shown on
a terminal and hidden elsewhere, and ``GENPRM_PROGRESS=1`` / ``0`` forces them on / off.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["setup_logging", "progress", "timed"]

T = TypeVar("T")


def setup_logging(level: str | int | None = None) -> None:
    """Configure the root logger once (level from ``GENPRM_LOG_LEVEL``, default INFO)."""
    level = level or os.environ.get("GENPRM_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _bar_disabled() -> bool | None:
    flag = os.environ.get("GENPRM_PROGRESS")
    if flag is None:
        return None  # tqdm: hide when stderr is not a terminal
    return flag.strip().lower() in ("0", "false", "no", "off")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``tqdm`` over ``iterable`` with the project's defaults."""
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=_bar_disabled(), dynamic_ncols=True))


@contextmanager
def timed(name: str, logger: logging.Logger | None = None) -> Iterator[dict]:
    """Measure a block: yields a dict whose ``seconds`` is filled in at exit, and logs it."""
    out: dict = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = round(time.perf_counter() - start, 3)
        (logger or logging.getLogger("genprm")).info("%s took %.2f s", name, out["seconds"])
