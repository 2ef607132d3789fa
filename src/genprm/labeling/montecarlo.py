"""Monte-Carlo values of step prefixes (part 2 of the method).

For a kept solution with steps a_1..a_T and each prefix of t steps (t = 1..T-1), the
completer model answers the problem with its assistant turn pre-filled with
``format_steps(steps[:t]) + "\\nStep {t+1}:"``; ``mc[t-1]`` = MC(s_t, a_t) is the share of K
completions whose final answer (of prefix + completion) is correct (graded with
:func:`genprm.grading.grade_pairs`). K is dynamic on MC(s_1) (:func:`dynamic_k`).

Rules that save completions:

- **last step**: MC(s_T, a_T) is the solution's own correctness (1.0 or 0.0): the prefix is
  the whole solution, so every "completion" would return its own final answer. ``k = 0``.
- **zero propagation**: after the first step with MC = 0, later steps get MC = 0 without
  sampling (``k = 0``), the last step included (the paper's rule, whatever the final answer).

One-sided problems (kept by the rollout's ``one_sided: keep``) need no special case: their
``mc_first`` is 0.0 (no correct path: the largest K) or 1.0, and every step is sampled as usual.

Batching: the work runs in waves; wave t holds step t of every solution still alive (longer
than t steps, no zero yet). Each wave is one engine call (split into calls of
``max_requests_per_call`` requests when huge) with ``n = K`` per request, so the engine
shares the prompt prefix across the K samples (vLLM prefix caching). Request seeds derive
from (seed, solution id, t) only (:func:`prefix_seed`), never from batch position.

With an :class:`genprm.labeling.config.AdaptiveConfig` that is enabled, each wave samples in
chunks until the RPE decision is settled (:mod:`genprm.labeling.adaptive`); a step of wave t
may then sample its previous step (wave t - 1) again, whose stored value changes with it.

Use::

    values, stats = estimate_values(generator, problems, solutions, k_thresholds=[(0.1, 128), (0.9, 64), (1.0, 32)])
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from genprm.config import PolicyPrompt, policy_messages
from genprm.engine import GenerationRequest, Generator
from genprm.records import Problem, Solution, StepValues
from genprm.steps import format_steps

__all__ = [
    "check_k_thresholds",
    "dynamic_k",
    "prefix_seed",
    "completion_request",
    "PrefixJob",
    "sample_prefixes",
    "estimate_values",
    "mc_first_of",
]

log = logging.getLogger(__name__)


def check_k_thresholds(pairs: Sequence[Sequence[float]]) -> None:
    """Raise ``ValueError`` unless ``pairs`` are (upper_bound, K) with ascending bounds, last 1.0, K >= 1."""
    if not pairs:
        raise ValueError("k_thresholds is empty")
    bounds = [float(b) for b, _ in pairs]
    if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
        raise ValueError(f"k_thresholds bounds must be strictly ascending, got {bounds}")
    if bounds[-1] != 1.0:
        raise ValueError(f"the last k_thresholds bound must be 1.0, got {bounds[-1]}")
    for b, k in pairs:
        if not 0.0 < float(b) <= 1.0 or int(k) < 1 or int(k) != k:
            raise ValueError(f"invalid k_thresholds pair ({b}, {k}): need 0 < bound <= 1 and integer K >= 1")


def dynamic_k(mc_first: float, thresholds: Sequence[Sequence[float]]) -> int:
    """K of the first ``(upper_bound, K)`` pair with ``mc_first < upper_bound``.

    With the paper's ``[(0.1, 128), (0.9, 64), (1.0, 32)]``: 128 below 0.1, 64 on [0.1, 0.9),
    32 on [0.9, 1]; MC(s_1) = 1 (no incorrect path) takes the last K.
    """
    if not 0.0 <= mc_first <= 1.0:
        raise ValueError(f"mc_first must be in [0, 1], got {mc_first}")
    for bound, k in thresholds:
        if mc_first < bound:
            return int(k)
    return int(thresholds[-1][1])


def prefix_seed(seed: int, solution_id: str, t: int, round_: int = 0) -> int:
    """A 31-bit seed from (run seed, solution id, prefix length, sampling round)."""
    digest = hashlib.sha256(f"{seed}\x1f{solution_id}\x1f{t}\x1f{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def completion_request(
    problem: str, steps: Sequence[str], t: int, *, n: int, temperature: float, top_p: float, max_tokens: int, seed: int,
    prompt: PolicyPrompt | None = None,
) -> GenerationRequest:
    """The completer's request for the prefix of ``t`` steps (1 <= t < len(steps) in practice),
    in the policy's conversation (``prompt``: the one the solutions were sampled with)."""
    prefix = (format_steps(list(steps[:t])) + "\n" if t > 0 else "") + f"Step {t + 1}:"
    return GenerationRequest(
        messages=policy_messages(problem, prompt),
        assistant_prefix=prefix,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
    )


@dataclass
class PrefixJob:
    """One step prefix to estimate: solution, prefix length ``t``, budget ``k``, RPE threshold."""

    solution: Solution
    answer: str
    t: int
    k: int
    prev: float
    """MC(s_t): the value before this step (its RPE denominator)."""
    parent: PrefixJob | None = None
    """The same solution's previous step (t >= 2, adaptive sampling), which the step may sample again."""
    correct: int = 0
    sampled: int = 0
    settled: bool = False
    rounds: list[int] = field(default_factory=list)
    """Completions drawn per sampling round; round r is seeded with ``prefix_seed(seed, id, t, r)``."""
    outcomes: list[bool] = field(default_factory=list)
    """Correctness of each completion, in sampling order."""

    @property
    def value(self) -> float:
        return self.correct / self.sampled if self.sampled else 0.0


@dataclass
class SamplingStats:
    completions: int = 0
    reopened: int = 0
    """Adaptive rounds in which a step sampled its previous step again (``denominator="joint"``)."""
    engine_calls: int = 0
    engine_seconds: float = 0.0


def sample_prefixes(
    generator: Generator,
    jobs: Sequence[PrefixJob],
    ns: Sequence[int],
    *,
    seed: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    max_requests_per_call: int,
    stats: SamplingStats,
    prompt: PolicyPrompt | None = None,
) -> None:
    """Sample ``ns[i]`` completions for ``jobs[i]`` (batched), grade them, add to the job's counts.

    Each job's request is its next sampling round (``len(job.rounds)``), so a step's sample stream
    depends on its own history only, never on the batch it shares.
    """
    from genprm.grading import extract_answer, grade_pairs

    requests = [
        completion_request(
            j.solution.problem, j.solution.steps, j.t, n=n, temperature=temperature, top_p=top_p,
            max_tokens=max_tokens, seed=prefix_seed(seed, j.solution.id, j.t, len(j.rounds)), prompt=prompt,
        )
        for j, n in zip(jobs, ns)
    ]
    for start in range(0, len(requests), max_requests_per_call):
        chunk_jobs = jobs[start : start + max_requests_per_call]
        chunk = requests[start : start + max_requests_per_call]
        t0 = time.perf_counter()
        outputs = generator.generate(chunk)
        dt = time.perf_counter() - t0
        stats.engine_calls += 1
        stats.engine_seconds += dt
        n_out = sum(len(o) for o in outputs)
        stats.completions += n_out
        log.info("%d completions for %d prefixes in %.2f s (%.1f completions/s)", n_out, len(chunk), dt, n_out / max(dt, 1e-9))
        pairs: list[tuple[str, str]] = []
        owners: list[tuple[PrefixJob, int]] = []
        for job, req, outs in zip(chunk_jobs, chunk, outputs):
            start_at = len(job.outcomes)
            job.outcomes.extend([False] * len(outs))
            for j, c in enumerate(outs):
                pred = extract_answer(req.assistant_prefix + c.text)
                if pred is not None:
                    pairs.append((job.answer, pred))
                    owners.append((job, start_at + j))
            job.sampled += len(outs)
            job.rounds.append(len(outs))
        verdicts = grade_pairs(pairs) if pairs else []
        for (job, pos), ok in zip(owners, verdicts):
            job.correct += bool(ok)
            job.outcomes[pos] = bool(ok)


def mc_first_of(solution: Solution) -> float:
    """MC(s_1) recorded by the rollout stage in the solution's metadata."""
    try:
        return float(solution.metadata["mc_first"])
    except KeyError:
        raise ValueError(f"solution {solution.id} has no metadata.mc_first (not a rollout output?)") from None


def estimate_values(
    generator: Generator,
    problems: Sequence[Problem],
    solutions: Sequence[Solution],
    *,
    k_thresholds: Sequence[Sequence[float]],
    temperature: float = 0.7,
    top_p: float = 1.0,
    max_tokens: int = 128,
    seed: int = 0,
    max_requests_per_call: int = 4096,
    adaptive=None,
    outcomes: dict[tuple[str, int], list[bool]] | None = None,
    prompt: PolicyPrompt | None = None,
) -> tuple[list[StepValues], dict]:
    """MC values of every step of ``solutions`` (in input order) and counts/timings.

    ``adaptive``: an enabled :class:`genprm.labeling.config.AdaptiveConfig` switches every
    wave to chunked sequential sampling; ``None`` (or disabled) uses the fixed dynamic K.
    ``outcomes``: a dict to fill with ``(solution_id, t) -> correctness of each completion``
    (for paired comparisons, see :func:`genprm.labeling.adaptive.replay_adaptive`).
    """
    from genprm.logs import progress

    answers = {p.id: p.answer for p in problems}
    t_start = time.perf_counter()
    stats = SamplingStats()
    mc: list[list[float]] = []
    ks: list[list[int]] = []
    alive: list[bool] = []
    budgets: list[int] = []
    for s in solutions:
        if answers.get(s.problem_id) is None:
            raise ValueError(f"solution {s.id}: problem {s.problem_id!r} is missing or has no answer")
        if s.correct is None:
            raise ValueError(f"solution {s.id} is not graded (correct is None)")
        if not s.steps:
            raise ValueError(f"solution {s.id} has no steps")
        mc.append([0.0] * len(s.steps))
        ks.append([0] * len(s.steps))
        alive.append(True)
        budgets.append(dynamic_k(mc_first_of(s), k_thresholds))
    use_adaptive = adaptive is not None and adaptive.enabled
    rule = None
    if use_adaptive:
        from genprm.labeling.adaptive import StoppingRule, adaptive_sample

        rule = StoppingRule.from_config(adaptive)
    longest = max((len(s.steps) for s in solutions), default=0)
    waves = 0
    last_job: dict[int, PrefixJob] = {}
    for t in progress(range(1, longest), desc="mc waves", total=max(0, longest - 1), unit="wave"):
        idx = [i for i, s in enumerate(solutions) if alive[i] and len(s.steps) > t]
        if not idx:
            break
        waves += 1
        jobs = [
            PrefixJob(solutions[i], answers[solutions[i].problem_id] or "", t, budgets[i],
                      mc_first_of(solutions[i]) if t == 1 else mc[i][t - 2], parent=last_job.get(i))
            for i in idx
        ]
        common = dict(seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                      max_requests_per_call=max_requests_per_call, stats=stats, prompt=prompt)
        if rule is not None:
            adaptive_sample(generator, jobs, rule=rule, **common)
        else:
            sample_prefixes(generator, jobs, [j.k for j in jobs], **common)
        for i, job in zip(idx, jobs):
            for step in (job.parent, job):  # a re-opened previous step changed too
                if step is None:
                    continue
                mc[i][step.t - 1] = step.value
                ks[i][step.t - 1] = step.sampled
                if outcomes is not None:
                    outcomes[(solutions[i].id, step.t)] = list(step.outcomes)
            job.parent = None  # only the next wave's step may sample this one again: keep no longer chain
            last_job[i] = job
            if job.correct == 0:
                alive[i] = False
    out = []
    for i, s in enumerate(solutions):
        if alive[i]:
            mc[i][-1] = 1.0 if s.correct else 0.0
        out.append(StepValues(solution_id=s.id, problem_id=s.problem_id, mc_first=mc_first_of(s), mc=mc[i], k=ks[i]))
    seconds = time.perf_counter() - t_start
    n_steps = sum(len(s.steps) for s in solutions)
    sampled_steps = sum(1 for k in ks for x in k if x > 0)
    result = {
        "solutions": len(solutions),
        "steps": n_steps,
        "steps_sampled": sampled_steps,
        "steps_implied": n_steps - sampled_steps,
        "completions": stats.completions,
        "engine_calls": stats.engine_calls,
        "waves": waves,
        "engine_seconds": round(stats.engine_seconds, 3),
        "seconds": round(seconds, 3),
        "completions_per_s": round(stats.completions / stats.engine_seconds, 2) if stats.engine_seconds else 0.0,
        "adaptive": use_adaptive,
        "reopened_rounds": stats.reopened,
    }
    log.info("MC values: %d solutions, %d completions in %.1f s", len(solutions), stats.completions, seconds)
    return out, result
