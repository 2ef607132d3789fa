"""Adaptive Monte-Carlo: sample a step in chunks until its RPE label is settled (beyond the paper).

The fixed scheme draws K completions (dynamic on MC(s_1)) for every step prefix. But the
label only asks whether MC(s_t, a_t) >= tau with tau = epsilon * MC(s_t); most steps are far
from tau and a few samples decide them. Here each step is sampled ``chunk`` completions at a
time, and stops once, with c correct out of n drawn and the budget K:

1. **exact bound** (always): the fixed-K estimate (c + x) / K, for any x in [0, K - n] still to
   come, falls on one side of tau: ``c / K >= tau`` (label 1 whatever follows) or
   ``(c + K - n) / K < tau`` (label 0 whatever follows). Then the fixed scheme with the
   same first n samples would give the same label;
2. **confidence bound** (when ``confidence`` is set), one of

   - ``"wilson"``: the two-sided Wilson score interval of c / n at that confidence lies
     wholly above or below tau (a statement about the true MC value);
   - ``"predictive"``: the probability that the fixed-K estimate would end on the other side
     of tau is below 1 - confidence, with the remaining K - n samples' successes drawn from
     the Beta-Binomial posterior predictive under a Jeffreys prior Beta(1/2, 1/2) (a
     statement about agreement with the fixed scheme, which the benchmark measures).

   Both are per-look bounds, not corrected for repeated looks, so the realised error rate is
   somewhat above 1 - confidence;
3. the budget K is used up.

The stored value is c / n with ``k = n``; it lies on the same side of tau as the decision
(for 1 and 2 by construction), so labels stay a pure function of stored values
(:mod:`genprm.labeling.labels`). Only the RPE label at ``epsilon`` is targeted: hard and
difference labels are computed from coarser values and agree less with the fixed scheme.

Batching: each chunk round is one engine call over all unsettled steps of the wave; round r
of a step uses seed ``prefix_seed(seed, solution_id, t, r)``. Compared with the fixed scheme
by ``bench/labeling.py``, also *paired* with :func:`replay_adaptive`: the stopping rule run on
the first n of the very completions the fixed scheme drew, which separates the rule's own
effect from the Monte-Carlo noise that any fresh sampling has.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from statistics import NormalDist

from genprm.engine import Generator
from genprm.labeling.labels import TOLERANCE
from genprm.labeling.montecarlo import PrefixJob, SamplingStats, dynamic_k, mc_first_of, sample_prefixes
from genprm.records import Solution, StepValues

__all__ = [
    "BOUNDS",
    "z_value",
    "wilson_interval",
    "predictive_flip_probability",
    "exact_decision",
    "settled_decision",
    "adaptive_sample",
    "replay_adaptive",
]

BOUNDS = ("wilson", "predictive")

log = logging.getLogger(__name__)


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 0.95, 2.576 for 0.99."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(correct: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``correct / n`` (``(0, 1)`` for ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def predictive_one(correct: int, n: int, k: int, threshold: float) -> float:
    """P(the fixed-K share reaches ``threshold``) given ``correct`` of ``n``, Jeffreys prior."""
    need = max(0, math.ceil((threshold - TOLERANCE) * k) - correct)  # successes still needed
    rest = k - n
    if need <= 0:
        return 1.0
    if need > rest:
        return 0.0
    a, b = correct + 0.5, n - correct + 0.5
    base = _log_beta(a, b)
    tail = 0.0
    for x in range(need, rest + 1):
        log_pmf = (math.lgamma(rest + 1) - math.lgamma(x + 1) - math.lgamma(rest - x + 1)
                   + _log_beta(x + a, rest - x + b) - base)
        tail += math.exp(log_pmf)
    return min(1.0, tail)


def predictive_flip_probability(correct: int, n: int, k: int, threshold: float) -> float:
    """Posterior-predictive probability that the fixed-K label differs from the current majority side."""
    p1 = predictive_one(correct, n, k, threshold)
    return min(p1, 1.0 - p1)


def exact_decision(correct: int, n: int, k: int, threshold: float) -> int | None:
    """The label the full budget ``k`` must give whatever the ``k - n`` samples to come, else None.

    Label 1 iff the final share ``>= threshold`` (with :data:`TOLERANCE`, as in ``labels.py``).
    """
    if not 0 <= correct <= n <= k:
        raise ValueError(f"need 0 <= correct <= n <= k, got correct={correct} n={n} k={k}")
    if correct / k >= threshold - TOLERANCE:
        return 1
    if (correct + k - n) / k < threshold - TOLERANCE:
        return 0
    return None


def settled_decision(
    correct: int, n: int, k: int, threshold: float, confidence: float | None, bound: str = "wilson"
) -> int | None:
    """The settled label of a step (exact bound, then the confidence bound if set), or None.

    The returned label always equals ``correct / n >= threshold`` (the label of the stored value).
    """
    exact = exact_decision(correct, n, k, threshold)
    if exact is not None:
        return exact
    if confidence is None or n == 0:
        return None
    current = int(correct / n >= threshold - TOLERANCE)
    if bound == "wilson":
        lo, hi = wilson_interval(correct, n, z_value(confidence))
        if lo >= threshold and current == 1:
            return 1
        if hi < threshold and current == 0:
            return 0
        return None
    if bound == "predictive":
        p1 = predictive_one(correct, n, k, threshold)
        if current == 1 and p1 >= confidence:
            return 1
        if current == 0 and 1.0 - p1 >= confidence:
            return 0
        return None
    raise ValueError(f"unknown bound {bound!r}; known: {', '.join(BOUNDS)}")


def adaptive_sample(
    generator: Generator,
    jobs: Sequence[PrefixJob],
    *,
    chunk: int,
    confidence: float | None,
    epsilon: float,
    bound: str = "wilson",
    seed: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    max_requests_per_call: int,
    stats: SamplingStats,
) -> None:
    """Sample ``jobs`` (one wave) in rounds of ``chunk`` until each is settled; fills their counts."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    open_jobs = [j for j in jobs]
    round_ = 0
    while open_jobs:
        ns = [min(chunk, j.k - j.sampled) for j in open_jobs]
        sample_prefixes(
            generator, open_jobs, ns, seed=seed, round_=round_, temperature=temperature, top_p=top_p,
            max_tokens=max_tokens, max_requests_per_call=max_requests_per_call, stats=stats,
        )
        still = []
        for j in open_jobs:
            if settled_decision(j.correct, j.sampled, j.k, epsilon * j.prev, confidence, bound) is None:
                still.append(j)
            else:
                j.settled = True
        log.debug("adaptive round %d: %d of %d steps still open", round_, len(still), len(open_jobs))
        open_jobs = still
        round_ += 1


def replay_adaptive(
    outcomes: dict[tuple[str, int], list[bool]],
    solutions: Sequence[Solution],
    *,
    k_thresholds: Sequence[Sequence[float]],
    chunk: int,
    confidence: float | None,
    epsilon: float,
    bound: str = "wilson",
) -> tuple[list[StepValues], int]:
    """The adaptive scheme replayed on a fixed-K run's completions; returns values and completions used.

    ``outcomes`` comes from ``estimate_values(..., outcomes=d)`` without adaptive sampling.
    Every step the replay samples was sampled by the fixed run (a replayed solution dies no
    later than the fixed one), and its first n outcomes stand in for n fresh samples.
    """
    values, used = [], 0
    for s in solutions:
        k = dynamic_k(mc_first_of(s), k_thresholds)
        mc, ks = [0.0] * len(s.steps), [0] * len(s.steps)
        prev, alive = mc_first_of(s), True
        for t in range(1, len(s.steps)):
            seq = outcomes[(s.id, t)]
            if len(seq) != k:
                raise ValueError(f"{s.id} step {t}: {len(seq)} outcomes recorded, the budget is {k}")
            n = c = 0
            while True:
                step = min(chunk, k - n)
                c += sum(seq[n : n + step])
                n += step
                if settled_decision(c, n, k, epsilon * prev, confidence, bound) is not None:
                    break
            mc[t - 1], ks[t - 1] = c / n, n
            used += n
            prev = c / n
            if c == 0:
                alive = False
                break
        if alive:
            mc[-1] = 1.0 if s.correct else 0.0
        values.append(StepValues(solution_id=s.id, problem_id=s.problem_id, mc_first=mc_first_of(s), mc=mc, k=ks))
    return values, used
