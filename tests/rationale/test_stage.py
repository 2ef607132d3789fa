"""The ``synthesis`` stage end to end on hand-built labelled world solutions, and its config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from genprm.config import ConfigError
from genprm.labeling.config import load_section
from genprm.rationale.config import SynthesisConfig
from genprm.records import Rationale, SFTExample, read_records, write_records

ROOT = Path(__file__).resolve().parents[2]
SECTION = {
    "engine": {"backend": "world-teacher", "settings": {"noise": 0.0}},
    "format": "per_step",
    "label": "rpe",
    "max_code_rounds": 3,
    "max_tokens_per_step": 2048,
    "step_timeout_s": 120,
    "balance": "keep",
    "seed": 0,
    "sandbox": {"timeout_s": 5.0, "memory_mb": 1024, "pool_size": 2},
    "gate": {"min_yes_share": 0.2, "max_yes_share": 0.95},
}


def _inputs(tmp: Path, labelled, section: dict, eval_problems: list[dict]) -> list[str]:
    (tmp / "params.yaml").write_text(yaml.safe_dump({"synthesis": section}))
    write_records(tmp / "solutions.jsonl", [s for s, _ in labelled])
    # one solution without values: not reviewed
    extra = labelled[0][0].model_copy(update={"id": "unlabelled"})
    write_records(tmp / "solutions.jsonl", [*(s for s, _ in labelled), extra])
    write_records(tmp / "values.jsonl", [v for _, v in labelled])
    (tmp / "eval").mkdir()
    write_records(tmp / "eval" / "test.jsonl", eval_problems)
    return ["--params", str(tmp / "params.yaml"), "--solutions", str(tmp / "solutions.jsonl"),
            "--values", str(tmp / "values.jsonl"), "--eval-glob", str(tmp / "eval" / "*.jsonl"),
            "--out", str(tmp / "sft"), "--metrics", str(tmp / "metrics.json")]


def test_stage_writes_sft_rationales_and_metrics(tmp_path, labelled, load_script):
    # corrupt one label: the teacher disagrees there, so that solution is not kept
    labelled = [(s, v.model_copy(deep=True)) for s, v in labelled]
    labelled[0][1].labels["rpe"][-1] = 0
    args = _inputs(tmp_path, labelled, SECTION, [{"id": "e1", "problem": "Compute 1 + 2 + 3."}])
    assert load_script(ROOT / "stages" / "synthesis.py").main(args) == 0
    train = read_records(tmp_path / "sft" / "train.jsonl", SFTExample)
    rationales = read_records(tmp_path / "sft" / "rationales.jsonl", Rationale)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r.solution_id for r in rationales] == [s.id for s, _ in labelled]
    assert rationales[0].first_error == -1 and all(v.correct for v in rationales[0].verdicts)
    assert [e.solution_id for e in train] == [s.id for s, _ in labelled[1:]]
    assert metrics["reviewed"] == len(labelled) and metrics["solutions"] == len(labelled) + 1
    assert metrics["consensus"]["kept"] == len(labelled) - 1 and metrics["consensus"]["disagree"] == 1
    assert metrics["consensus"]["by_generator"]["policy"]["reviewed"] == len(labelled)
    assert metrics["dropped"] == {} and metrics["gate"]["failed"] == 0
    assert metrics["code_blocks"] == sum(len(s.steps) for s, _ in labelled)
    # the rate is a timing: it lives in the untracked timings file beside the metrics, not in them
    assert "solutions_per_second" not in metrics
    assert json.loads((tmp_path / "metrics.timings.json").read_text())["solutions_per_second"] > 0


def test_stage_gate_failure_writes_its_report_then_fails(tmp_path, labelled, load_script, caplog):
    args = _inputs(tmp_path, labelled, SECTION, [{"id": "e1", "problem": labelled[3][0].problem}])
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "train.jsonl").write_text("stale\n")  # an earlier run's: must not pass for this one's
    with caplog.at_level(logging.ERROR):
        assert load_script(ROOT / "stages" / "synthesis.py").main(args) == 1
    assert "decontaminated" in caplog.text and "run `prepare` again" in caplog.text
    assert not (tmp_path / "sft" / "train.jsonl").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (failure,) = metrics["gate"]["failures"]
    assert failure["column"] == "decontaminated" and failure["unexpected_count"] == 2  # both of the problem's
    assert failure["rows"] == [{"decontaminated": False, "id": s.id} for s, _ in labelled[2:4]]
    assert metrics["gate"]["failed"] == 1 and metrics["consensus"]["kept"] == len(labelled)
    # what can be inspected is written: every review, and the examples under a name train never reads
    assert len(read_records(tmp_path / "sft" / "rationales.jsonl", Rationale)) == len(labelled)
    rejected = read_records(tmp_path / "sft" / "train.gate-failed.jsonl", SFTExample)
    assert len(rejected) == len(labelled) and metrics["gate_failed_output"].endswith("train.gate-failed.jsonl")


def test_stage_with_no_consensus_writes_reviews_and_metrics_then_fails(tmp_path, labelled, load_script, caplog):
    # every label contradicts the (noise-free) teacher: consensus keeps nothing
    flipped = [(s, v.model_copy(update={"labels": {"rpe": [0] * len(v.mc) if s.correct else [1] * len(v.mc)}}))
               for s, v in labelled]
    args = _inputs(tmp_path, flipped, SECTION, [{"id": "e1", "problem": "Compute 1 + 2 + 3."}])
    with caplog.at_level(logging.ERROR):
        assert load_script(ROOT / "stages" / "synthesis.py").main(args) == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["consensus"]["kept"] == 0 and metrics["consensus"]["disagree"] == len(labelled)
    assert metrics["train"] == 0 and "gate" not in metrics
    assert len(read_records(tmp_path / "sft" / "rationales.jsonl", Rationale)) == len(labelled)
    assert not (tmp_path / "sft" / "train.jsonl").exists()
    text = caplog.text
    for knob in (f"consensus kept 0 of {len(labelled)}", "synthesis.label", "synthesis.engine: world-teacher",
                 "synthesis.max_tokens_per_step", "rationales.jsonl"):
        assert knob in text, text


def test_stage_without_labelled_solutions_fails_before_the_teacher(tmp_path, labelled, load_script, caplog):
    args = _inputs(tmp_path, labelled, SECTION, [{"id": "e1", "problem": "Compute 1 + 2 + 3."}])
    write_records(tmp_path / "values.jsonl", [])
    with caplog.at_level(logging.ERROR):
        assert load_script(ROOT / "stages" / "synthesis.py").main(args) == 1
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"solutions": len(labelled) + 1, "labelled": 0,
                                                                   "values": 0}
    assert "synthesis has nothing to review" in caplog.text and "`labels`" in caplog.text


def test_config_defaults_and_errors(tmp_path):
    cfg = SynthesisConfig()
    assert cfg.engine.backend == "world-teacher" and cfg.format == "per_step" and cfg.max_code_rounds == 3
    assert cfg.limits().code_timeout_s == cfg.sandbox.timeout_s
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"synthesis": {**SECTION, "max_code_round": 2}}))
    with pytest.raises(ConfigError, match="synthesis.max_code_round: unknown key"):
        load_section(tmp_path / "p.yaml", "synthesis", SynthesisConfig)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"synthesis": {**SECTION, "format": "whole"}}))
    with pytest.raises(ConfigError, match="synthesis.format"):
        load_section(tmp_path / "p.yaml", "synthesis", SynthesisConfig)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"synthesis": SECTION}))
    assert load_section(tmp_path / "p.yaml", "synthesis", SynthesisConfig).sandbox.pool_size == 2
