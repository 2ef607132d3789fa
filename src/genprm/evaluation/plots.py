"""PNG figures of the evaluations (matplotlib, Agg backend, no display needed).

- :func:`plot_processbench_f1`: F1 per split (bars) with the average;
- :func:`plot_best_of_n`: accuracy against N (log2 axis) per method;
- :func:`plot_reward_histogram`: step rewards of correct vs erroneous steps.

Bad input raises ``ValueError`` (nothing to plot, non-numeric or non-finite values); rewards
outside [0, 1] are skipped and counted (the count is returned and logged).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from genprm.records import atomic_write

__all__ = ["plot_processbench_f1", "plot_best_of_n", "plot_reward_histogram", "plot_refinement"]

log = logging.getLogger(__name__)


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100, bbox_inches="tight")


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{what}: {x!r} is not a finite number")
    return float(x)


def plot_processbench_f1(metrics: Mapping[str, Any], path: str | os.PathLike, title: str = "ProcessBench F1") -> None:
    """Bars of ``metrics["splits"][split]["f1"]`` (as from ``processbench_metrics``) plus the average."""
    splits = metrics.get("splits") if isinstance(metrics, Mapping) else None
    if not splits:
        raise ValueError("metrics have no 'splits' to plot")
    names = list(splits)
    values = [_number(splits[n].get("f1"), f"split {n} f1") for n in names]
    names.append("average")
    values.append(sum(values) / len(values))
    plt = _figure()
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    bars = ax.bar(names, values, color=["tab:blue"] * (len(names) - 1) + ["tab:orange"])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def plot_best_of_n(curves: Mapping[str, Mapping[str, float]], path: str | os.PathLike, title: str = "Best-of-N") -> None:
    """Accuracy against N for each method (``best_of_n_curves`` output)."""
    if not curves or not any(curves.values()):
        raise ValueError("no Best-of-N curves to plot")
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, points in curves.items():
        ns = sorted(points, key=lambda n: int(n))
        ax.plot([int(n) for n in ns], [_number(points[n], f"{method} at N={n}") for n in ns], marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (solutions)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_reward_histogram(
    correct: Sequence[float], erroneous: Sequence[float], path: str | os.PathLike, title: str = "Step rewards", bins: int = 20
) -> int:
    """Histograms of rewards of correct and erroneous steps; returns the number of skipped values."""
    kept: list[list[float]] = [[], []]
    skipped = 0
    for k, values in enumerate((correct, erroneous)):
        for v in values:
            x = _number(v, "reward")
            if 0.0 <= x <= 1.0:
                kept[k].append(x)
            else:
                skipped += 1
    if not kept[0] and not kept[1]:
        raise ValueError("no rewards in [0, 1] to plot")
    if skipped:
        log.warning("reward histogram: skipped %d values outside [0, 1]", skipped)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    edges = [i / bins for i in range(bins + 1)]
    ax.hist(kept[0], bins=edges, alpha=0.6, label=f"correct steps ({len(kept[0])})")
    ax.hist(kept[1], bins=edges, alpha=0.6, label=f"erroneous steps ({len(kept[1])})")
    ax.set_xlabel("reward P(Yes)")
    ax.set_ylabel("steps")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return skipped


def plot_refinement(accuracy: Mapping[str, Sequence[float]], path: str | os.PathLike,
                    title: str = "Critic refinement") -> None:
    """Accuracy per refinement turn (turn 0: the starting solutions) for each arm."""
    if not accuracy or not any(accuracy.values()):
        raise ValueError("no refinement accuracy to plot")
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = {"critic": "GenPRM critic", "self": "self-refinement"}
    for arm, values in accuracy.items():
        ax.plot(range(len(values)), [_number(v, f"{arm} accuracy") for v in values], marker="o", label=labels.get(arm, arm))
    ax.set_xlabel("refinement turn")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(range(max(len(v) for v in accuracy.values())))
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
