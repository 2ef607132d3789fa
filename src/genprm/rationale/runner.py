"""The ``synthesis`` stage as ``stages/synthesis.py`` calls it: reviews -> consensus -> SFT -> gate.

:func:`synthesis_stage` reads the rollout's solutions and their labelled step values, reviews
every labelled solution with the configured teacher (batched, code executed in a sandbox: see
:mod:`genprm.rationale.synthesis`), parses the reviews (malformed ones are dropped and counted by
reason), keeps those that agree with the labels (:mod:`genprm.rationale.consensus`), builds the
SFT examples, optionally balances them, runs the SFT gate against the evaluation sets' problems
and writes (atomically)::

    data/sft/train.jsonl          SFTExample records (kept, balanced, gated)
    data/sft/rationales.jsonl     one Rationale per reviewed solution (kept or not)

It returns the stage's metrics: counts, drop reasons, retention overall / per generator / per
problem source, balance, gate summary, timings and throughput.
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
from genprm.rationale.config import SynthesisConfig
from genprm.rationale.consensus import filter_consensus, first_zero, problem_source
from genprm.rationale.gate import run_sft_gate
from genprm.rationale.parsing import ParsedReview, parse_reviews
from genprm.rationale.prompts import parse_whole_solution
from genprm.rationale.sft import balance_examples, build_example
from genprm.rationale.synthesis import Review, synthesize
from genprm.records import Rationale, Solution, StepValues, Verdict, read_records, write_records

__all__ = ["synthesis_stage", "read_eval_problems", "to_rationale", "create_teacher"]

log = logging.getLogger(__name__)


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
    if not labelled:
        raise ValueError(f"no solution of {solutions_path} has step values in {values_path}")
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
    gate = run_sft_gate(balanced, eval_problems=eval_problems, problems={s.id: s.problem for s in labelled},
                        min_yes_share=cfg.gate.min_yes_share, max_yes_share=cfg.gate.max_yes_share)
    out_dir = Path(out_dir)
    write_records(out_dir / "rationales.jsonl", [to_rationale(r, parsed.get(r.solution_id), teacher_name) for r in reviews])
    write_records(out_dir / "train.jsonl", balanced)
    fallbacks = sum(t.fallback for r in reviews for t in r.turns)
    metrics = {
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
        "code_blocks": sum(r.code_rounds for r in reviews),
        "teacher_tokens": sum(r.tokens for r in reviews),
        "gate": gate,
        "scheduler": stats,
        "sandbox_start_seconds": round(sandbox_seconds, 3),
        "review_seconds": round(review_seconds, 3),
        "solutions_per_second": round(len(reviews) / review_seconds, 3) if review_seconds > 0 else None,
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    log.info("synthesis: %d reviewed, %d parsed, %d kept, %d in the SFT set", len(reviews), len(parsed),
             consensus.report["kept"], len(balanced))
    return metrics
