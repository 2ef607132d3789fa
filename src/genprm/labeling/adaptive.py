"""Adaptive Monte-Carlo: sample a step in chunks until what its value decides is settled (beyond the paper).

The fixed scheme draws K completions (dynamic on MC(s_1)) for every step prefix. Here a step
is sampled ``chunk`` completions at a time (looks at n = chunk, 2 chunk, ... < K) and stops at
the first look where every decision its stored value feeds is settled; at n = K it stops in
any case and then equals the fixed scheme. The reference is the fixed scheme *on the same
sample stream*: C_K = c + X, where c of the first n draws were correct and X counts the
K - n draws the fixed scheme would still make. A step's stored value c / n feeds:

1. **its RPE label** (always): label 1 iff C_K / K >= tau, tau = epsilon * MC(s_t) (the stored
   value of the previous step, or MC(s_1)). Settled by

   - the **exact bound**: every X in [0, K - n] gives the same side
     (``c / K >= tau`` or ``(c + K - n) / K < tau``); then the label *is* the fixed label;
   - or, when ``confidence`` is set, the **confidence bound** ``bound`` (below);

2. **the zero event** C_K = 0 (a step with MC 0 ends the path: all later steps get MC 0 and
   label 0), when a stored 0 would decide a later label: a later step is sampled
   (t < T - 1) or the solution is correct (its last step is labeled 1 while the path lives).
   While c = 0 it is settled only at n = K (exact), under ``predictive`` when
   P(X = 0 | data) >= confidence, under ``exchangeable`` when (K - n) / K <= alpha_look.
   For the last sampled step of an incorrect solution a stored 0 changes no RPE label, so
   it is not required there (``zero_event="always"`` requires it everywhere, for hard labels);

3. **the next RPE label's denominator**, when the next step is sampled (t < T - 1), with
   ``denominator_guard`` g set: the next label compares MC(s_{t+1}, a_{t+1}) with
   epsilon * (c / n), the fixed scheme with epsilon * C_K / K. Early stops happen on
   extreme runs (4 of 4 stores 1.0 for a step at 0.7), and an overstated denominator turns
   the next *correct* step (one that leaves MC unchanged) into a 0. The guard stops only if
   P(a neutral next step, K fresh draws at this step's own p, gets a different RPE label
   against c / n than against C_K / K) <= g, under the prior below (computed exactly: the
   joint law of X and the next step's count is a bivariate Beta-Binomial).

Confidence bounds (``alpha = 1 - confidence``; J = number of looks before K):

- ``"predictive"`` (default): Bayesian. With p ~ Beta(prior) (uniform Beta(1, 1) by
  default), stop when the posterior-predictive probability that C_K lands on the other side
  of tau is <= alpha. *Statement*: under that model, for every look schedule, the
  probability that the adaptive label differs from the fixed-K label on the same stream
  (given the same denominator) is <= alpha - a posterior probability stays calibrated at a
  data-dependent stopping time (optional stopping), so no correction for repeated looks is
  needed. It is a statement about agreement with the fixed scheme, which is what the
  benchmark measures; it holds on average over p ~ prior, not for every p. The uniform
  prior is the default because Jeffreys' Beta(1/2, 1/2) was overconfident at c = n on the
  world (after 8 of 8 correct, the share of the remaining draws was below 0.8 for 12% of steps;
  Jeffreys predicts 5%, uniform 13%).
- ``"exchangeable"``: frequentist and prior-free. Given the fixed-K total C, the first n of
  K exchangeable draws are hypergeometric, whatever p. Stop with label 0 if
  P(<= c successes | C = r) <= alpha / J for r the smallest label-1 total (then for every
  label-1 total: the tail falls with C), with label 1 symmetrically at C = r - 1.
  *Statement*: for every p and every realised fixed-K total, P(adaptive label != fixed-K
  label on the same stream) <= alpha (Bonferroni over the J looks). Costly: it cannot use
  that most steps are far from tau.
- ``"wilson"``: the Wilson score interval of c / n at level 1 - alpha / J lies wholly on one
  side of tau. *Statement*: with probability >= 1 - alpha over all looks at once, an early
  stop labels the side of the true MC value (not of the fixed-K estimate: when the true
  value is near tau the fixed scheme itself is a coin flip).

Every bound only stops on the side of the stored value: a settled label equals
``c / n >= tau``, so labels stay a pure function of stored values
(:mod:`genprm.labeling.labels`). Hard and difference labels are not targeted (hard labels
only through ``zero_event="always"``).

What is *not* covered: the denominator guard bounds neutral next steps only; a next step
whose true ratio is itself close to epsilon can still flip. And fresh samples are not the
fixed run's samples: two fixed runs with different seeds already disagree on some labels
(``bench/labeling.py`` reports that noise floor next to the paired comparison).

Measured (world, paper K, same sample stream; 400 kept solutions, 1,200 labels, 300 of them
used to choose the guard level): this rule with chunk 4, confidence 0.95, guard 0.2 used 3.02x
fewer completions than the fixed scheme with 97.4% of RPE labels (98.3% of hard labels)
identical - on the benchmark's 100 alone 2.87x at 96.1%, so the issue's target (3x at 97%) is
at the edge of what it reaches; the rule this module had before (Jeffreys prior, chunk 8,
confidence 0.99, no zero event or guard) 2.5x at 96.5% (95.3%).
Nearly all remaining differences come through early-stopped denominators: replayed with the
fixed run's own denominators (not implementable) the same rule gives about 3.2-3.5x at 98.7-98.8%.
Sampling a denominator step again while its next step is open would need ``montecarlo.py`` to
re-open earlier waves.

Batching: each chunk round is one engine call over all unsettled steps of the wave; round r
of a step uses seed ``prefix_seed(seed, solution_id, t, r)``. :func:`replay_adaptive` runs the
same rule on the first n of the very completions a fixed run drew (a paired comparison).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from genprm.engine import Generator
from genprm.labeling.labels import TOLERANCE
from genprm.labeling.montecarlo import PrefixJob, SamplingStats, dynamic_k, mc_first_of, sample_prefixes
from genprm.records import Solution, StepValues

__all__ = [
    "BOUNDS",
    "ZERO_EVENTS",
    "UNIFORM",
    "JEFFREYS",
    "DEFAULT_DENOMINATOR_GUARD",
    "z_value",
    "wilson_interval",
    "predictive_one",
    "predictive_flip_probability",
    "exact_decision",
    "settled_decision",
    "zero_settled",
    "neutral_flip_probability",
    "look_schedule",
    "StoppingRule",
    "adaptive_sample",
    "replay_adaptive",
]

BOUNDS = ("predictive", "wilson", "exchangeable")
ZERO_EVENTS = ("relevant", "always", "never")
UNIFORM: tuple[float, float] = (1.0, 1.0)
JEFFREYS: tuple[float, float] = (0.5, 0.5)
DEFAULT_DENOMINATOR_GUARD = 0.2
"""The guard level of :func:`adaptive_sample`. Chosen with chunk 4 and confidence 0.95 on 300 kept world
solutions disjoint from the benchmark's subset (paper K, paired): 3.08x fewer completions, 97.9% of RPE
labels identical (0.1: 2.4x, 98.9%; none: 3.3x, 97.0%)."""

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


def _check_prior(prior: Sequence[float]) -> tuple[float, float]:
    a, b = float(prior[0]), float(prior[1])
    if a <= 0 or b <= 0:
        raise ValueError(f"prior Beta parameters must be > 0, got {prior}")
    return a, b


def _need(correct: int, k: int, threshold: float) -> int:
    """Successes still needed for the fixed-K share to reach ``threshold`` (labels.py's tolerance)."""
    return max(0, math.ceil((threshold - TOLERANCE) * k) - correct)


def predictive_one(correct: int, n: int, k: int, threshold: float, prior: Sequence[float] = UNIFORM) -> float:
    """P(the fixed-K share reaches ``threshold``) given ``correct`` of ``n``, p ~ Beta(prior) a priori."""
    a0, b0 = _check_prior(prior)
    need = _need(correct, k, threshold)
    rest = k - n
    if need <= 0:
        return 1.0
    if need > rest:
        return 0.0
    a, b = correct + a0, n - correct + b0
    base = _log_beta(a, b)
    tail = 0.0
    for x in range(need, rest + 1):
        log_pmf = (math.lgamma(rest + 1) - math.lgamma(x + 1) - math.lgamma(rest - x + 1)
                   + _log_beta(x + a, rest - x + b) - base)
        tail += math.exp(log_pmf)
    return min(1.0, tail)


def predictive_flip_probability(
    correct: int, n: int, k: int, threshold: float, prior: Sequence[float] = UNIFORM
) -> float:
    """Posterior-predictive probability that the fixed-K label differs from the current majority side."""
    p1 = predictive_one(correct, n, k, threshold, prior)
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


def _hyper_tail_le(c: int, n: int, k: int, total: int) -> float:
    """P(at most ``c`` successes in ``n`` draws without replacement from ``k`` holding ``total``)."""
    lo, hi = max(0, n - (k - total)), min(n, total)
    if c < lo:
        return 0.0
    num = sum(math.comb(total, x) * math.comb(k - total, n - x) for x in range(lo, min(c, hi) + 1))
    return num / math.comb(k, n)


def _hyper_tail_ge(c: int, n: int, k: int, total: int) -> float:
    return 1.0 - _hyper_tail_le(c - 1, n, k, total) if c > 0 else 1.0


def settled_decision(
    correct: int,
    n: int,
    k: int,
    threshold: float,
    confidence: float | None,
    bound: str = "predictive",
    *,
    looks: int = 1,
    prior: Sequence[float] = UNIFORM,
) -> int | None:
    """The settled RPE label of a step (exact bound, then the confidence bound if set), or None.

    ``looks``: the number of looks before K, for the Bonferroni correction of ``wilson`` and
    ``exchangeable``; ``prior``: the Beta prior of ``predictive``. The returned label always
    equals ``correct / n >= threshold`` (the label of the stored value).
    """
    if bound not in BOUNDS:
        raise ValueError(f"unknown bound {bound!r}; known: {', '.join(BOUNDS)}")
    exact = exact_decision(correct, n, k, threshold)
    if exact is not None:
        return exact
    if confidence is None or n == 0:
        return None
    alpha = (1.0 - confidence) / max(1, looks)
    current = int(correct / n >= threshold - TOLERANCE)
    if bound == "wilson":
        lo, hi = wilson_interval(correct, n, z_value(1.0 - alpha))
        if lo >= threshold and current == 1:
            return 1
        if hi < threshold and current == 0:
            return 0
        return None
    if bound == "predictive":
        p1 = predictive_one(correct, n, k, threshold, prior)
        if current == 1 and p1 >= confidence:
            return 1
        if current == 0 and 1.0 - p1 >= confidence:
            return 0
        return None
    r = correct + _need(correct, k, threshold)  # the smallest fixed-K total with label 1 (>= 1 here)
    if current == 0 and _hyper_tail_le(correct, n, k, r) <= alpha:
        return 0
    if current == 1 and _hyper_tail_ge(correct, n, k, r - 1) <= alpha:
        return 1
    return None


def zero_settled(
    n: int, k: int, confidence: float | None, bound: str = "predictive", *, looks: int = 1,
    prior: Sequence[float] = UNIFORM,
) -> bool:
    """Whether 0 correct of ``n`` settles the zero event C_K = 0 (exact at ``n >= k``)."""
    if n >= k:
        return True
    if confidence is None or n == 0:
        return False
    if bound == "predictive":
        a0, b0 = _check_prior(prior)  # P(X = 0) = B(a0, b0 + k) / B(a0, b0 + n)
        return math.exp(_log_beta(a0, b0 + k) - _log_beta(a0, b0 + n)) >= confidence
    if bound == "exchangeable":
        return (k - n) / k <= (1.0 - confidence) / max(1, looks)  # P(c = 0 | C = 1)
    return False  # wilson: an interval never settles p = 0


@lru_cache(maxsize=65536)
def _neutral_flip(correct: int, n: int, k: int, epsilon: float, a0: float, b0: float) -> float:
    import numpy as np
    from scipy.special import betaln, gammaln

    m = k - n
    x = np.arange(m + 1)[:, None]  # draws the fixed scheme still makes: X successes
    y = np.arange(k + 1)[None, :]  # a neutral next step: Y successes of K at the same p
    a, b = a0 + correct, b0 + n - correct
    log_p = (gammaln(m + 1) - gammaln(x + 1) - gammaln(m - x + 1)
             + gammaln(k + 1) - gammaln(y + 1) - gammaln(k - y + 1)
             + betaln(a + x + y, b + (m - x) + (k - y)) - betaln(a, b))
    label_adaptive = y / k >= epsilon * (correct / n) - TOLERANCE
    label_fixed = y / k >= epsilon * (correct + x) / k - TOLERANCE
    return float(np.exp(log_p)[label_adaptive != label_fixed].sum())


def neutral_flip_probability(correct: int, n: int, k: int, epsilon: float, prior: Sequence[float] = UNIFORM) -> float:
    """P(a neutral next step gets another RPE label against ``correct / n`` than against C_K / K).

    A neutral next step has this step's own success rate p; its count Y ~ Bin(K, p), the
    fixed scheme's count C_K = correct + X with X ~ Bin(K - n, p), and p ~ Beta(prior + data).
    0 at ``n >= k`` (the stored value is the fixed one) and for ``correct == 0`` (no next step).
    """
    if not 0 <= correct <= n <= k or n == 0:
        raise ValueError(f"need 0 <= correct <= n <= k and n > 0, got correct={correct} n={n} k={k}")
    if n >= k or correct == 0:
        return 0.0
    a0, b0 = _check_prior(prior)
    return _neutral_flip(correct, n, k, float(epsilon), a0, b0)


def look_schedule(k: int, chunk: int) -> list[int]:
    """Sample counts at which a step with budget ``k`` is looked at: chunk, 2 chunk, ..., k."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [*range(chunk, k, chunk), k]


@dataclass(frozen=True)
class StoppingRule:
    """The rule of the module docstring; :meth:`stop` decides one look of one step."""

    epsilon: float = 0.8
    confidence: float | None = 0.95
    bound: str = "predictive"
    prior: tuple[float, float] = UNIFORM
    zero_event: str = "relevant"
    denominator_guard: float | None = DEFAULT_DENOMINATOR_GUARD
    chunk: int = 4

    def __post_init__(self) -> None:
        if self.bound not in BOUNDS:
            raise ValueError(f"unknown bound {self.bound!r}; known: {', '.join(BOUNDS)}")
        if self.zero_event not in ZERO_EVENTS:
            raise ValueError(f"unknown zero_event {self.zero_event!r}; known: {', '.join(ZERO_EVENTS)}")
        if self.confidence is not None and not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.denominator_guard is not None and not 0.0 <= self.denominator_guard <= 1.0:
            raise ValueError(f"denominator_guard must be in [0, 1], got {self.denominator_guard}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        _check_prior(self.prior)

    def looks(self, k: int) -> list[int]:
        return look_schedule(k, self.chunk)

    def stop(self, correct: int, n: int, k: int, prev: float, *, t: int, n_steps: int, solution_correct: bool) -> bool:
        """Whether step ``t`` (1-based) of a solution with ``n_steps`` steps stops at ``correct`` of ``n``.

        ``prev`` is MC(s_t), the stored value before the step (MC(s_1) for t = 1).
        """
        if n >= k:
            return True
        looks = max(1, len(self.looks(k)) - 1)
        opts = dict(looks=looks, prior=self.prior)
        if settled_decision(correct, n, k, self.epsilon * prev, self.confidence, self.bound, **opts) is None:
            return False
        later_sampled = t < n_steps - 1
        if correct == 0:
            needed = {"relevant": later_sampled or solution_correct, "always": True, "never": False}[self.zero_event]
            return not needed or zero_settled(n, k, self.confidence, self.bound, **opts)
        if self.denominator_guard is not None and later_sampled:
            return neutral_flip_probability(correct, n, k, self.epsilon, self.prior) <= self.denominator_guard
        return True


def adaptive_sample(
    generator: Generator,
    jobs: Sequence[PrefixJob],
    *,
    chunk: int,
    confidence: float | None,
    epsilon: float,
    bound: str = "predictive",
    seed: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    max_requests_per_call: int,
    stats: SamplingStats,
    prior: Sequence[float] = UNIFORM,
    zero_event: str = "relevant",
    denominator_guard: float | None = DEFAULT_DENOMINATOR_GUARD,
) -> None:
    """Sample ``jobs`` (one wave) in rounds of ``chunk`` until each one stops (:class:`StoppingRule`); fills their counts."""
    rule = StoppingRule(epsilon=epsilon, confidence=confidence, bound=bound, prior=tuple(prior),
                        zero_event=zero_event, denominator_guard=denominator_guard, chunk=chunk)
    open_jobs = list(jobs)
    round_ = 0
    while open_jobs:
        ns = [min(chunk, j.k - j.sampled) for j in open_jobs]
        sample_prefixes(
            generator, open_jobs, ns, seed=seed, round_=round_, temperature=temperature, top_p=top_p,
            max_tokens=max_tokens, max_requests_per_call=max_requests_per_call, stats=stats,
        )
        still = []
        for j in open_jobs:
            if rule.stop(j.correct, j.sampled, j.k, j.prev, t=j.t, n_steps=len(j.solution.steps),
                         solution_correct=bool(j.solution.correct)):
                j.settled = True
            else:
                still.append(j)
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
    bound: str = "predictive",
    prior: Sequence[float] = UNIFORM,
    zero_event: str = "relevant",
    denominator_guard: float | None = DEFAULT_DENOMINATOR_GUARD,
) -> tuple[list[StepValues], int]:
    """The adaptive scheme replayed on a fixed-K run's completions; returns values and completions used.

    ``outcomes`` comes from ``estimate_values(..., outcomes=d)`` without adaptive sampling.
    Every step the replay samples was sampled by the fixed run (a replayed path dies no later
    than the fixed one: C_K = 0 implies c = 0), and its first n outcomes stand in for n fresh
    samples. Same rule and look schedule as :func:`adaptive_sample`.
    """
    rule = StoppingRule(epsilon=epsilon, confidence=confidence, bound=bound, prior=tuple(prior),
                        zero_event=zero_event, denominator_guard=denominator_guard, chunk=chunk)
    values, used = [], 0
    for s in solutions:
        k = dynamic_k(mc_first_of(s), k_thresholds)
        mc, ks = [0.0] * len(s.steps), [0] * len(s.steps)
        prev, alive = mc_first_of(s), True
        for t in range(1, len(s.steps)):
            seq = outcomes[(s.id, t)]
            if len(seq) != k:
                raise ValueError(f"{s.id} step {t}: {len(seq)} outcomes recorded, the budget is {k}")
            for n in rule.looks(k):
                c = sum(seq[:n])
                if rule.stop(c, n, k, prev, t=t, n_steps=len(s.steps), solution_correct=bool(s.correct)):
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
