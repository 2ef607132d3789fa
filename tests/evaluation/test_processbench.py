"""ProcessBench metrics against an independent re-implementation of the official computation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from genprm.data import load_processbench
from genprm.evaluation.processbench import predict_first_error, processbench_metrics, write_predictions


def _official(rows: list[dict]) -> tuple[float, float, float]:
    """QwenLM/ProcessBench run_eval.py: match = prediction == label; accuracies in percent."""
    error = [r for r in rows if r["label"] != -1]
    correct = [r for r in rows if r["label"] == -1]
    acc1 = np.mean([r["prediction"] == r["label"] for r in error]) * 100
    acc2 = np.mean([r["prediction"] == r["label"] for r in correct]) * 100
    return acc1, acc2, 2 * acc1 * acc2 / (acc1 + acc2)


def test_metrics_equal_official_formula_on_real_data(shared_data, tmp_path):
    samples = load_processbench(shared_data / "processbench")
    assert {s.split for s in samples} == {"gsm8k", "math", "olympiadbench", "omnimath"}
    rng = random.Random(0)
    preds = [s.label if rng.random() < 0.7 else rng.randrange(-1, len(s.steps)) for s in samples]
    metrics = processbench_metrics(samples, preds)
    f1s = []
    for split, m in metrics["splits"].items():
        rows = [{"label": s.label, "prediction": p} for s, p in zip(samples, preds) if s.split == split]
        ae, ac, f1 = _official(rows)
        assert m["error_acc"] == pytest.approx(ae, abs=1e-9)
        assert m["correct_acc"] == pytest.approx(ac, abs=1e-9)
        assert m["f1"] == pytest.approx(f1, abs=1e-9)
        assert m["n"] == len(rows) and 0 < m["f1"] < 100
        f1s.append(f1)
    assert metrics["average_f1"] == pytest.approx(sum(f1s) / 4, abs=1e-9)
    perfect = processbench_metrics(samples, [s.label for s in samples])
    assert perfect["average_f1"] == 100.0
    # predictions file: one line per sample
    rewards = [[1.0] * len(s.steps) for s in samples]
    n = write_predictions(tmp_path / "p.jsonl", samples, [-1] * len(samples), rewards)
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert n == len(lines) == len(samples)
    row = json.loads(lines[0])
    assert {"id", "split", "prediction", "step_rewards"} <= set(row) and row["id"] == samples[0].id
    assert "step_forced" not in row


def test_predictions_carry_forced_shares(tmp_path):
    from genprm.records import ProcessBenchSample

    samples = [ProcessBenchSample(id="a", problem="p", steps=["x", "y"], final_answer_correct=True, label=-1)]
    write_predictions(tmp_path / "p.jsonl", samples, [-1], [[0.9, 0.8]], [[0.0, 0.5]])
    assert json.loads((tmp_path / "p.jsonl").read_text())["step_forced"] == [0.0, 0.5]
    with pytest.raises(ValueError, match="forced shares"):
        write_predictions(tmp_path / "q.jsonl", samples, [-1], [[0.9, 0.8]], [[0.0]])
    assert not (tmp_path / "q.jsonl").exists()


def test_accuracy_per_error_kind_where_samples_know_it():
    from genprm.records import ProcessBenchSample

    def sample(i: int, label: int, kind: str | None, split: str = "a") -> ProcessBenchSample:
        return ProcessBenchSample(id=str(i), problem="p", steps=["x", "y"], final_answer_correct=label == -1,
                                  label=label, split=split, error_kind=kind)

    samples = [sample(0, 0, "copy"), sample(1, 1, "copy", "b"), sample(2, 1, "arithmetic"), sample(3, -1, None)]
    metrics = processbench_metrics(samples, [0, -1, 1, -1])
    assert metrics["error_acc_by_kind"] == {"arithmetic": {"error_acc": 100.0, "n": 1}, "copy": {"error_acc": 50.0, "n": 2}}
    assert "error_acc_by_kind" not in processbench_metrics([sample(4, 1, None)], [1])  # the real benchmark


def test_predict_first_error():
    assert predict_first_error([0.9, 0.7, 0.2, 0.1]) == 2
    assert predict_first_error([0.9, 0.5]) == -1
    assert predict_first_error([0.9, 0.5], threshold=0.6) == 1
    with pytest.raises(ValueError):
        predict_first_error([float("nan")])


def test_bad_predictions_raise():
    from genprm.records import ProcessBenchSample

    s = ProcessBenchSample(id="a", problem="p", steps=["x", "y"], final_answer_correct=False, label=1, split="t")
    with pytest.raises(ValueError, match="outside"):
        processbench_metrics([s], [5])
    with pytest.raises(ValueError, match="1 samples but 2"):
        processbench_metrics([s], [1, 1])
    assert processbench_metrics([s], [None])["splits"]["t"]["error_acc"] == 0.0
