"""The ``synthesis`` stage as ``stages/synthesis.py`` calls it: reviews -> consensus -> SFT -> gate.

:func:`synthesis_stage` reads the rollout's solutions and their labelled step values, reviews
every labelled solution with the configured teacher (batched, code executed in a sandbox: see
:mod:`genprm.rationale.synthesis`), parses the reviews (malformed ones are dropped and counted by
reason), keeps those that agree with the labels (:mod:`genprm.rationale.consensus`), builds the
SFT examples, optionally balances them, runs the SFT gate against the evaluation sets' problems
and writes (atomically)::

    data/sft/rationales.jsonl     one Rationale per reviewed solution (kept or not), always
    data/sft/train.jsonl          SFTExample records (kept, balanced, gated), when the gate passed

It returns the stage's metrics: counts, drop reasons, retention overall / per generator / per
problem source, balance, gate summary, timings and throughput.

When the stage has nothing to write it fails after writing what can be inspected, with an
exception that carries the metrics (:class:`genprm.quality.StageFailure`; the stage script writes
them, then exits non-zero); ``train.jsonl`` is then not written, and one left from an earlier
run is removed, as ``dvc repro`` does before it runs a stage:

- no solution has step values: :class:`~genprm.quality.StageOutputError` (nothing reviewed);
- consensus (and balancing) kept no example: :class:`~genprm.quality.StageOutputError` naming the
  consensus report's counts and the knobs (``synthesis.label``, the teacher, ``max_tokens_per_step``);
- the SFT gate failed: :class:`~genprm.quality.GateError`; the metrics' ``gate`` section holds each
  failed expectation and its rejected rows, the examples go to ``train.gate-failed.jsonl``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genprm.conversation import parse_judgement
from genprm.engine.base import Generator
from genprm.quality import GateError, StageOutputError
from genprm.rationale.config import SynthesisConfig
from genprm.rationale.consensus import filter_consensus, first_zero, problem_source
from genprm.rationale.gate import run_sft_gate
from genprm.rationale.parsing import ParsedReview, parse_reviews
from genprm.rationale.prompts import parse_whole_solution
from genprm.rationale.sft import balance_examples, build_example
from genprm.rationale.synthesis import Review, synthesize
from genprm.records import Rationale, Solution, StepValues, Verdict, read_records, write_records

__all__ = ["synthesis_stage", "read_eval_problems", "to_rationale", "create_teacher", "FAILED_GATE_NAME"]

log = logging.getLogger(__name__)

FAILED_GATE_NAME = "train.gate-failed.jsonl"
"""Where, in the output folder, the SFT examples go when the gate fails (``train.jsonl`` is not written)."""


def read_eval_problems(paths: Sequence[str | Path]) -> set[str]:
    """Normalised problem texts of every row of the given evaluation ``.jsonl`` files."""
    from genprm.data import normalize_text

    out: set[str] = set()
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if raw.strip():
                    row = json.loads(raw)
                    if not isinstance(row, dict) or not isinstance(row.get("problem"), str):
                        raise ValueError(f"{path}, line {lineno}: no 'problem' text")
                    out.add(normalize_text(row["problem"]))
    return out


def to_rationale(review: Review, parsed: ParsedReview | None, teacher: str) -> Rationale:
    """A :class:`Rationale` record of a review; unparsed reviews keep whatever verdicts can be read.

    A paragraph without a parseable judgement gets ``correct=None, reward=None``: no guess.
    """
    if parsed is not None:
        verdicts: list[bool | None] = list(parsed.verdicts)
        first = parsed.first_error
    else:
        if review.format == "per_step":
            verdicts = [parse_judgement(t.text) for t in review.turns]
        else:
            verdicts, _ = parse_whole_solution(review.text, n_paragraphs=review.n_steps)
        first = first_zero([v is not False for v in verdicts])
    texts = [t.text for t in review.turns] if review.format == "per_step" else [""] * len(verdicts)
    return Rationale(
        solution_id=review.solution_id,
        teacher=teacher,
        verdicts=[
            Verdict(step=i, correct=v, reward=None if v is None else float(v), text=texts[i] if i < len(texts) else "")
            for i, v in enumerate(verdicts)
        ],
        first_error=first,
        text=review.text if review.format == "whole_solution" else "",
    )


def create_teacher(cfg: SynthesisConfig, model: str | None = None) -> Generator:
    """The teacher engine (``model``: the stage's default, used when ``engine.settings.model`` is unset)."""
    return cfg.engine.create(model)


def synthesis_stage(
    cfg: SynthesisConfig,
    solutions_path: str | Path,
    values_path: str | Path,
    eval_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    model: str | None = None,
    generator: Generator | None = None,
) -> dict[str, Any]:
    """Run the stage (see the module docstring); returns its metrics."""
    from genprm.sandbox import Sandbox, SandboxConfig

    t_start = time.perf_counter()
    solutions = read_records(solutions_path, Solution)
    values = {v.solution_id: v for v in read_records(values_path, StepValues)}
    labelled = [s for s in solutions if s.id in values]
    out_dir = Path(out_dir)
    if not labelled:
        (out_dir / "train.jsonl").unlink(missing_ok=True)
        raise StageOutputError(
            f"synthesis has nothing to review: no solution of {solutions_path} ({len(solutions)} solutions) has "
            f"step values in {values_path} ({len(values)} values). Run `labels` (and `montecarlo`) on this "
            f"rollout's solutions first; if the rollout kept none, see its metrics and `rollout.one_sided`.",
            {"solutions": len(solutions), "labelled": 0, "values": len(values)},
        )
    eval_problems = read_eval_problems(eval_paths)
    teacher = generator or create_teacher(cfg, model)
    teacher_name = cfg.engine.backend + (f":{cfg.engine.settings['model']}" if "model" in cfg.engine.settings else "")
    sandbox_cfg = SandboxConfig(timeout_s=cfg.sandbox.timeout_s, memory_mb=cfg.sandbox.memory_mb,
                                pool_size=cfg.sandbox.pool_size, min_isolation=cfg.sandbox.min_isolation)
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        with Sandbox(sandbox_cfg) as sandbox:
            sandbox.start()
            sandbox_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            reviews = synthesize(teacher, sandbox.session, [(s.id, s.problem, s.steps) for s in labelled],
                                 cfg.limits(), stats=stats)
    finally:
        if generator is None:
            teacher.close()
    review_seconds = time.perf_counter() - t0
    parsed, dropped = parse_reviews(reviews, cfg.max_repeats)
    consensus = filter_consensus(labelled, values, parsed, cfg.label)
    by_id = {s.id: s for s in labelled}
    review_of = {r.solution_id: r for r in reviews}
    examples = [
        build_example(by_id[sid], review_of[sid], parsed[sid], source=problem_source(by_id[sid]), style=cfg.style)
        for sid in consensus.kept
    ]
    balanced = balance_examples(examples, cfg.balance, cfg.seed)
    write_records(out_dir / "rationales.jsonl", [to_rationale(r, parsed.get(r.solution_id), teacher_name) for r in reviews])
    fallbacks = sum(t.fallback for r in reviews for t in r.turns)
    metrics: dict[str, Any] = {
        "solutions": len(solutions),
        "labelled": len(labelled),
        "reviewed": len(reviews),
        "parsed": len(parsed),
        "dropped": dict(sorted(dropped.items())),
        "consensus": consensus.report,
        "examples": len(examples),
        "train": len(balanced),
        "balance": cfg.balance,
        "budget_exhausted": sum(r.budget_exhausted for r in reviews),
        "fallback_turns": fallbacks,
        "forced_turns": sum(t.forced for r in reviews for t in r.turns),
        "code_blocks": sum(r.code_rounds for r in reviews),
        "teacher_tokens": sum(r.tokens for r in reviews),
    }
    timings = {
        "scheduler": stats,
        "sandbox_start_seconds": round(sandbox_seconds, 3),
        "review_seconds": round(review_seconds, 3),
        "solutions_per_second": round(len(reviews) / review_seconds, 3) if review_seconds > 0 else None,
    }
    failed_path = out_dir / FAILED_GATE_NAME
    if not balanced:
        (out_dir / "train.jsonl").unlink(missing_ok=True)
        failed_path.unlink(missing_ok=True)
        metrics.update(timings, seconds=round(time.perf_counter() - t_start, 3))
        raise StageOutputError(_no_examples_message(cfg, metrics, teacher_name, out_dir), metrics)
    try:
        metrics["gate"] = run_sft_gate(balanced, eval_problems=eval_problems,
                                       problems={s.id: s.problem for s in labelled},
                                       min_yes_share=cfg.gate.min_yes_share, max_yes_share=cfg.gate.max_yes_share)
    except GateError as exc:
        metrics["gate"] = exc.summary
        write_records(failed_path, balanced)
        (out_dir / "train.jsonl").unlink(missing_ok=True)
        metrics["gate_failed_output"] = str(failed_path)
        metrics.update(timings, seconds=round(time.perf_counter() - t_start, 3))
        exc.metrics = metrics
        raise
    write_records(out_dir / "train.jsonl", balanced)
    failed_path.unlink(missing_ok=True)
    metrics.update(timings, seconds=round(time.perf_counter() - t_start, 3))
    log.info("synthesis: %d reviewed, %d parsed, %d kept, %d in the SFT set", len(reviews), len(parsed),
             consensus.report["kept"], len(balanced))
    return metrics


def _no_examples_message(cfg: SynthesisConfig, m: dict[str, Any], teacher: str, out_dir: Path) -> str:
    c = m["consensus"]
    dropped = ", ".join(f"{k}: {v}" for k, v in m["dropped"].items()) or "none"
    balance = (f"; balance 'drop' then removed the {m['examples']} kept example(s)"
               if m["examples"] and cfg.balance == "drop" else "")
    keep = "; or set synthesis.balance: keep" if cfg.balance == "drop" else ""
    return (
        f"synthesis has no SFT examples: consensus kept {c['kept']} of {c['reviewed']} reviewed solutions "
        f"({c['unparsed']} unparsed, by reason: {dropped}; {c['disagree']} where the teacher's first error differs "
        f"from the {cfg.label!r} label's){balance}. Read the `consensus` report in the stage's metrics and every "
        f"review in {out_dir / 'rationales.jsonl'}. Check the teacher (synthesis.engine: {teacher}, "
        f"synthesis.format: {cfg.format}); if reviews were cut off ({m['budget_exhausted']} hit their budget), raise "
        f"synthesis.max_tokens_per_step (now {cfg.max_tokens_per_step}); try another label "
        f"(synthesis.label, e.g. hard) or better labels upstream (montecarlo K){keep}."
    )
