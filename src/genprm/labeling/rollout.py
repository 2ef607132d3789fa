"""Step-forced policy rollouts until each problem has a correct and an incorrect path (part 1).

Sampling runs in rounds: each round is ONE batched engine call over every still-open problem
with ``paths_per_round`` samples each (fewer in the last round so no problem exceeds
``max_paths``). A problem closes once it has both a correct and an incorrect path, or at
``max_paths``. Requests are the step-forced ones of :func:`genprm.sampling.policy_request`
(assistant turn pre-filled with ``Step 1:``); the seed of a problem's round r derives from
(seed, problem id, r) only, so results do not depend on which other problems share the call.

Per problem: MC(s_1) = correct / sampled over all its paths (the Pass@1 estimate); up to
``keep_correct`` correct and ``keep_incorrect`` incorrect paths with distinct step lists are
kept, chosen with a generator seeded by (seed, problem id), in sampling order. Kept solutions
carry ``metadata`` = ``{mc_first, paths_sampled, paths_correct, finish_reason}``; ids are
``{problem_id}/{j}`` with j the path's index among that problem's samples.

One-sided problems (no correct path, or no incorrect path, after ``max_paths``) are counted by
cause (``no_correct_problems``, ``no_incorrect_problems``) and handled by ``one_sided``:

- ``"drop"`` (the default, the paper's rule): the problem is dropped (``dropped_problems``).
- ``"keep"``: up to ``keep_correct`` / ``keep_incorrect`` paths of the outcome it has are kept,
  with ``mc_first`` 0.0 or 1.0 and ``metadata.one_sided`` = ``"no_correct"`` or
  ``"no_incorrect"``, which the labels gate reads to accept the problem (``one_sided_problems``).

Sampling is the same either way; only what is kept differs.

Use::

    result = run_rollouts(generator, problems, paths_per_round=8, max_paths=32, seed=0)
    result.solutions, result.stats
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from genprm.config import PolicyPrompt
from genprm.engine import Generator
from genprm.records import Problem, Solution
from genprm.sampling import policy_request
from genprm.steps import STEP_PREFIX, parse_steps

__all__ = ["ONE_SIDED", "RolloutResult", "rollout_seed", "run_rollouts"]

log = logging.getLogger(__name__)

ONE_SIDED = ("drop", "keep")
"""What :func:`run_rollouts` does with a problem that never got both outcomes (see the module docstring)."""


@dataclass
class RolloutResult:
    solutions: list[Solution]
    dropped: list[str]
    """Ids of problems dropped because they never got both a correct and an incorrect path."""
    stats: dict = field(default_factory=dict)
    outcomes: dict[str, list[bool]] = field(default_factory=dict)
    """Per problem, the correctness of every sampled path in sampling order (kept or not)."""
    one_sided: dict[str, str] = field(default_factory=dict)
    """Per problem that never got both outcomes (kept or dropped), ``"no_correct"`` or ``"no_incorrect"``."""


def rollout_seed(seed: int, problem_id: str, round_: int) -> int:
    """A 31-bit seed from (run seed, problem id, round)."""
    digest = hashlib.sha256(f"{seed}\x1frollout\x1f{problem_id}\x1f{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _parsed(problem: Problem, texts: Sequence[tuple[str, str]], start: int, name: str) -> list[Solution]:
    """Ungraded solutions from raw completions (text, finish_reason)."""
    from genprm.grading import extract_answer

    out = []
    for j, (text, finish) in enumerate(texts):
        full = STEP_PREFIX + text
        steps = parse_steps(full) or [text.strip()]
        out.append(
            Solution(
                id=f"{problem.id}/{start + j}",
                problem_id=problem.id,
                problem=problem.problem,
                steps=steps,
                final_answer=extract_answer(full),
                generator=name,
                metadata={"finish_reason": finish},
            )
        )
    return out


def _keep(problem: Problem, sols: list[Solution], want_correct: int, want_incorrect: int, seed: int) -> list[Solution]:
    """Up to ``want_*`` paths of each outcome with distinct step lists, seeded, in sampling order."""
    rng = random.Random(rollout_seed(seed, problem.id, -1))
    chosen: list[Solution] = []
    for outcome, want in ((True, want_correct), (False, want_incorrect)):
        seen: set[tuple[str, ...]] = set()
        distinct = []
        for s in sols:
            key = tuple(s.steps)
            if s.correct is outcome and key not in seen:
                seen.add(key)
                distinct.append(s)
        chosen.extend(distinct if len(distinct) <= want else rng.sample(distinct, want))
    order = {s.id: i for i, s in enumerate(sols)}
    return sorted(chosen, key=lambda s: order[s.id])


def run_rollouts(
    generator: Generator,
    problems: Sequence[Problem],
    *,
    paths_per_round: int = 8,
    max_paths: int = 32,
    keep_correct: int = 1,
    keep_incorrect: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 128,
    seed: int = 0,
    name: str = "policy",
    one_sided: str = "drop",
    prompt: PolicyPrompt | None = None,
) -> RolloutResult:
    """Sample ``problems`` in rounds until both outcomes exist; see the module docstring."""
    from genprm.grading import grade_pairs

    if paths_per_round < 1 or max_paths < 1:
        raise ValueError("paths_per_round and max_paths must be >= 1")
    if one_sided not in ONE_SIDED:
        raise ValueError(f"one_sided must be one of {list(ONE_SIDED)}, got {one_sided!r}")
    for p in problems:
        if p.answer is None:
            raise ValueError(f"problem {p.id} has no reference answer")
    t0 = time.perf_counter()
    paths: dict[str, list[Solution]] = {p.id: [] for p in problems}
    open_ = list(problems)
    rounds = calls = completions = 0
    engine_seconds = 0.0
    while open_:
        n = min(paths_per_round, max_paths - rounds * paths_per_round)
        requests = [
            policy_request(p.problem, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                           seed=rollout_seed(seed, p.id, rounds), prompt=prompt)
            for p in open_
        ]
        t1 = time.perf_counter()
        outputs = generator.generate(requests)
        dt = time.perf_counter() - t1
        engine_seconds += dt
        calls += 1
        new: list[Solution] = []
        for p, outs in zip(open_, outputs):
            made = _parsed(p, [(c.text, c.finish_reason) for c in outs], len(paths[p.id]), name)
            paths[p.id].extend(made)
            new.extend(made)
        completions += len(new)
        by_id = {p.id: p for p in open_}
        verdicts = grade_pairs([(by_id[s.problem_id].answer or "", s.final_answer or "") for s in new]) if new else []
        for s, ok in zip(new, verdicts):
            s.correct = bool(ok) and s.final_answer is not None
        rounds += 1
        log.info("rollout round %d: %d problems, %d paths in %.2f s (%.1f completions/s)",
                 rounds, len(open_), len(new), dt, len(new) / max(dt, 1e-9))
        open_ = [
            p for p in open_
            if len(paths[p.id]) < max_paths and not ({True, False} <= {s.correct for s in paths[p.id]})
        ]
    kept: list[Solution] = []
    dropped: list[str] = []
    causes: dict[str, str] = {}
    for p in problems:
        sols = paths[p.id]
        n_ok = sum(1 for s in sols if s.correct)
        extra: dict[str, str] = {}
        if n_ok == 0 or n_ok == len(sols):
            causes[p.id] = extra["one_sided"] = "no_correct" if n_ok == 0 else "no_incorrect"
            if one_sided == "drop":
                dropped.append(p.id)
                continue
        mc_first = n_ok / len(sols)
        for s in _keep(p, sols, keep_correct, keep_incorrect, seed):
            s.metadata = {**s.metadata, "mc_first": mc_first, "paths_sampled": len(sols), "paths_correct": n_ok,
                          **extra}
            kept.append(s)
    seconds = time.perf_counter() - t0
    no_correct = sum(1 for c in causes.values() if c == "no_correct")
    stats = {
        "problems": len(problems),
        "kept_problems": len(problems) - len(dropped),
        "dropped_problems": len(dropped),
        "no_correct_problems": no_correct,
        "no_incorrect_problems": len(causes) - no_correct,
        "one_sided_problems": len(causes) - len(dropped),
        "solutions": len(kept),
        "rounds": rounds,
        "engine_calls": calls,
        "completions": completions,
        "engine_seconds": round(engine_seconds, 3),
        "seconds": round(seconds, 3),
        "completions_per_s": round(completions / engine_seconds, 2) if engine_seconds else 0.0,
    }
    log.info("rollouts: kept %d of %d problems (%d solutions), %d completions",
             stats["kept_problems"], len(problems), len(kept), completions)
    outcomes = {pid: [bool(s.correct) for s in sols] for pid, sols in paths.items()}
    return RolloutResult(kept, dropped, stats, outcomes, causes)
