"""PNG plots and their input checks."""

from __future__ import annotations

import pytest

from genprm.evaluation.plots import plot_best_of_n, plot_processbench_f1, plot_reward_histogram

PNG = b"\x89PNG"


def test_plots_write_png(tmp_path):
    plot_processbench_f1({"splits": {"gsm8k": {"f1": 60.0}, "math": {"f1": 40.0}}}, tmp_path / "f1.png")
    plot_best_of_n({"prm_min": {"1": 40.0, "2": 45.0, "4": 50.0}, "majority": {"1": 40.0, "2": 42.0}}, tmp_path / "bon.png")
    skipped = plot_reward_histogram([0.9, 0.8, 1.5], [0.1, 0.3, -2.0], tmp_path / "h.png")
    assert skipped == 2
    for name in ("f1.png", "bon.png", "h.png"):
        assert (tmp_path / name).read_bytes()[:4] == PNG


def test_plots_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no 'splits'"):
        plot_processbench_f1({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="not a finite number"):
        plot_processbench_f1({"splits": {"x": {"f1": "high"}}}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="no Best-of-N"):
        plot_best_of_n({}, tmp_path / "b.png")
    with pytest.raises(ValueError, match="no rewards"):
        plot_reward_histogram([], [7.0], tmp_path / "c.png")
    assert not list(tmp_path.iterdir())
