"""The adaptive stopping rule: exactness, the stated confidence bounds (checked by seeded simulation), the guard, the joint rule."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from scipy import stats

from genprm.labeling.adaptive import (
    JEFFREYS,
    MORE,
    PARENT,
    STOP,
    UNIFORM,
    StoppingRule,
    exact_decision,
    joint_flip_probability,
    look_schedule,
    neutral_flip_probability,
    predictive_one,
    replay_adaptive,
    settled_decision,
    spread,
    wilson_interval,
    z_value,
    zero_settled,
)
from genprm.labeling.labels import TOLERANCE, rpe_labels
from genprm.records import Solution


GUARD = dict(denominator="guard", prior=UNIFORM, first_chunk=None)
"""The rule with a final denominator per step (``denominator="guard"``), uniform prior, equal chunks."""


def _final(c: int, k: int, threshold: float) -> int:
    return int(c / k >= threshold - TOLERANCE)


def _run_step(rule: StoppingRule, stream: list[bool], prev: float, *, t: int = 1, n_steps: int = 2,
              solution_correct: bool = False) -> tuple[int, int]:
    """(correct, n) at which ``rule`` stops on ``stream`` (its length is the budget K)."""
    k = len(stream)
    for n in rule.looks(k):
        c = sum(stream[:n])
        if rule.stop(c, n, k, prev, t=t, n_steps=n_steps, solution_correct=solution_correct):
            return c, n
    raise AssertionError("the rule did not stop at the budget")


# --- exactness: never stops while the decision is open ---------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 8, 13])
def test_exact_decision_is_exact(k: int) -> None:
    """Settled iff every possible rest of the budget gives the same fixed-K label."""
    thresholds = [0.0, 0.05, 0.25, 0.4, 0.5, 0.64, 0.8, 1.0, 1.2]
    for n, threshold in itertools.product(range(k + 1), thresholds):
        for c in range(n + 1):
            finals = {_final(c + x, k, threshold) for x in range(k - n + 1)}
            d = exact_decision(c, n, k, threshold)
            if len(finals) == 1:
                assert d == finals.pop(), (c, n, k, threshold)
            else:
                assert d is None, (c, n, k, threshold)


def test_exact_decision_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        exact_decision(3, 2, 8, 0.5)
    with pytest.raises(ValueError):
        exact_decision(0, 9, 8, 0.5)


@pytest.mark.parametrize("k,chunk", [(8, 1), (12, 4), (16, 3)])
def test_rule_never_stops_while_a_decision_is_open(k: int, chunk: int) -> None:
    """Exact mode: a stop before K only when the RPE label and (c = 0) the zero event are the same for every rest."""
    rule = StoppingRule(**GUARD, confidence=None, zero_event="always", denominator_guard=None, chunk=chunk)
    for n in rule.looks(k)[:-1]:
        for c, prev in itertools.product(range(n + 1), [0.05, 0.3, 0.5, 0.625, 0.9, 1.0]):
            if not rule.stop(c, n, k, prev, t=1, n_steps=3, solution_correct=True):
                continue
            rests = range(k - n + 1)
            assert len({_final(c + x, k, 0.8 * prev) for x in rests}) == 1, (c, n, k, prev)
            assert c > 0, "a zero count stopped before the budget with the zero event required"
            assert _final(c, n, 0.8 * prev) == _final(c + rests[-1], k, 0.8 * prev)  # stored side = fixed side


def test_zero_event_required_only_where_it_decides_a_later_label() -> None:
    rule = StoppingRule(**GUARD, confidence=0.95, denominator_guard=None, chunk=8)
    # 0 of 16 settles the RPE label at tau = 0.4 (K = 64) ...
    assert settled_decision(0, 16, 64, 0.4, 0.95, "predictive") == 0
    # ... a last sampled step of an incorrect solution may stop there (no later label depends on it)
    assert rule.stop(0, 16, 64, 0.5, t=1, n_steps=2, solution_correct=False)
    # but not when a later step is sampled, or the solution is correct (its last label lives on the path)
    assert not rule.stop(0, 16, 64, 0.5, t=1, n_steps=3, solution_correct=False)
    assert not rule.stop(0, 16, 64, 0.5, t=1, n_steps=2, solution_correct=True)
    assert rule.stop(0, 64, 64, 0.5, t=1, n_steps=3, solution_correct=True)  # the budget
    never = StoppingRule(**GUARD, confidence=0.95, denominator_guard=None, chunk=8, zero_event="never")
    assert never.stop(0, 16, 64, 0.5, t=1, n_steps=3, solution_correct=True)
    # zero_settled: uniform prior, P(no success in the rest) = (n + 1) / (k + 1)
    assert not zero_settled(56, 64, 0.95, "predictive")  # 57 / 65 < 0.95
    assert zero_settled(61, 64, 0.95, "predictive")  # 62 / 65 >= 0.95
    assert not zero_settled(63, 64, 0.95, "wilson") and zero_settled(64, 64, None)


# --- the confidence bounds -------------------------------------------------------------------------------------


def test_wilson_interval() -> None:
    z = z_value(0.95)
    assert z == pytest.approx(1.959964, abs=1e-5)
    lo, hi = wilson_interval(0, 10, z)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_interval(5, 10, z)
    assert lo < 0.5 < hi and lo == pytest.approx(0.2366, abs=1e-3)
    assert wilson_interval(0, 0, z) == (0.0, 1.0)


@pytest.mark.parametrize("prior", [UNIFORM, JEFFREYS])
def test_predictive_probability_matches_scipy_beta_binomial(prior) -> None:
    assert predictive_one(4, 8, 8, 0.5, prior) == 1.0
    assert predictive_one(0, 6, 8, 0.5, prior) == 0.0  # needs 4 more, only 2 to come
    for c, n, k, thr in [(3, 8, 64, 0.4), (12, 16, 64, 0.8), (1, 24, 128, 0.05), (7, 8, 32, 0.7)]:
        need = int(np.ceil((thr - TOLERANCE) * k)) - c
        want = stats.betabinom.sf(need - 1, k - n, c + prior[0], n - c + prior[1])
        assert predictive_one(c, n, k, thr, prior) == pytest.approx(want, abs=1e-9)
    probs = [predictive_one(c, 16, 64, 0.5, prior) for c in range(17)]
    assert all(a <= b for a, b in zip(probs, probs[1:]))
    assert probs[0] < 0.01 and probs[-1] > 0.99


@pytest.mark.parametrize("bound", ["wilson", "predictive", "exchangeable"])
def test_settled_decision_matches_stored_value(bound: str) -> None:
    """Whatever settles a step, its label equals the label of the stored value c / n."""
    for k, n in [(32, 8), (64, 16), (128, 24), (64, 64)]:
        for c in range(n + 1):
            for threshold in (0.05, 0.3, 0.5, 0.72, 0.9):
                d = settled_decision(c, n, k, threshold, 0.95, bound, looks=4)
                if d is not None:
                    assert d == int(c / n >= threshold - TOLERANCE)
                if d is not None and bound == "wilson" and exact_decision(c, n, k, threshold) is None:
                    lo, hi = wilson_interval(c, n, z_value(1 - 0.05 / 4))  # Bonferroni over the 4 looks
                    assert (lo >= threshold) if d == 1 else (hi < threshold)
    # far from the threshold a chunk of 8 settles; at it nothing does
    assert settled_decision(8, 8, 64, 0.2, 0.95, bound) == 1
    assert settled_decision(4, 8, 64, 0.5, 0.95, bound) is None
    # without a confidence bound only the exact bound (or the spent budget) settles
    assert settled_decision(8, 8, 64, 0.2, None, bound) is None
    assert settled_decision(13, 16, 16, 0.8, None, bound) == 1
    with pytest.raises(ValueError):
        settled_decision(1, 8, 64, 0.5, 0.99, "nope")


def _disagreement_rate(rule: StoppingRule, draw_p, thresholds, k: int, trials: int, seed: int) -> float:
    rng = random.Random(seed)
    flips = 0
    for i in range(trials):
        p, tau = draw_p(rng), thresholds[i % len(thresholds)]
        stream = [rng.random() < p for _ in range(k)]
        c, n = _run_step(rule, stream, prev=tau / rule.epsilon)
        flips += _final(c, n, tau) != _final(sum(stream), k, tau)
    return flips / trials


def test_predictive_bound_holds_on_average_over_the_prior() -> None:
    """p ~ uniform (the prior), looks every 4 draws: P(adaptive label != fixed-K label) <= 1 - confidence."""
    rule = StoppingRule(**GUARD, confidence=0.9, denominator_guard=None, zero_event="never", chunk=4)
    rate = _disagreement_rate(rule, lambda r: r.random(), [0.2, 0.4, 0.5, 0.72], k=64, trials=3000, seed=1)
    assert rate <= 0.10 + 3 * (0.1 * 0.9 / 3000) ** 0.5, rate
    # the exact-only rule never disagrees on the same stream
    exact = StoppingRule(**GUARD, confidence=None, denominator_guard=None, zero_event="never", chunk=4)
    assert _disagreement_rate(exact, lambda r: r.random(), [0.2, 0.4, 0.72], k=32, trials=300, seed=2) == 0.0


@pytest.mark.parametrize("p_minus_tau", [0.0, -0.03, 0.05])
def test_exchangeable_bound_holds_for_every_p(p_minus_tau: float) -> None:
    """Prior-free: even at p = tau (the fixed label is a coin flip) disagreement stays <= 1 - confidence."""
    rule = StoppingRule(**GUARD, confidence=0.9, bound="exchangeable", denominator_guard=None, zero_event="never", chunk=4)
    rate = _disagreement_rate(rule, lambda r: 0.4 + p_minus_tau, [0.4], k=64, trials=1500, seed=3)
    assert rate <= 0.10 + 3 * (0.1 * 0.9 / 1500) ** 0.5, rate


def test_wilson_bound_holds_for_the_true_value() -> None:
    """With the Bonferroni correction over the looks, early stops on the wrong side of the true MC stay rare."""
    rule = StoppingRule(**GUARD, confidence=0.9, bound="wilson", denominator_guard=None, zero_event="never", chunk=2)
    rng = random.Random(4)
    wrong = trials = 0
    for p in (0.3, 0.34, 0.46, 0.5):  # tau = 0.4
        for _ in range(500):
            stream = [rng.random() < p for _ in range(64)]
            c, n = _run_step(rule, stream, prev=0.5)
            trials += 1
            wrong += n < 64 and _final(c, n, 0.4) != int(p >= 0.4)
    assert wrong / trials <= 0.10, wrong / trials


# --- the denominator guard --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c,n,k", [(4, 4, 64), (3, 8, 64), (10, 16, 32), (1, 12, 128)])
def test_neutral_flip_probability_matches_simulation(c: int, n: int, k: int) -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(c + 1, n - c + 1, size=200_000)
    x = rng.binomial(k - n, p)
    y = rng.binomial(k, p)
    adaptive = y / k >= 0.8 * c / n - TOLERANCE
    fixed = y / k >= 0.8 * (c + x) / k - TOLERANCE
    want = float(np.mean(adaptive != fixed))
    assert neutral_flip_probability(c, n, k, 0.8) == pytest.approx(want, abs=0.005)
    assert neutral_flip_probability(c, k, k, 0.8) == 0.0 and neutral_flip_probability(0, n, k, 0.8) == 0.0


def test_guard_holds_a_denominator_only_when_the_next_step_is_sampled() -> None:
    guarded = StoppingRule(**GUARD, confidence=0.95, denominator_guard=0.2, chunk=4)
    assert settled_decision(4, 4, 64, 0.4, 0.95, "predictive") == 1
    assert neutral_flip_probability(4, 4, 64, 0.8) > 0.2  # 4 of 4 says little about p
    assert not guarded.stop(4, 4, 64, 0.5, t=1, n_steps=3, solution_correct=True)
    assert guarded.stop(4, 4, 64, 0.5, t=2, n_steps=3, solution_correct=True)  # the last sampled step


def test_guard_bounds_label_flips_on_neutral_chains() -> None:
    """Two sampled steps with the same success rate (a correct step leaves MC unchanged).

    The second label flips against the fixed run through the second step's own stop (<= 1 - confidence)
    and through an early-stopped denominator: the guard bounds the latter by its level.
    """
    rng = random.Random(6)
    sols, outcomes, n = [], {}, 300
    for i in range(n):
        p = rng.uniform(0.3, 0.95)
        s = Solution(id=f"s{i}", problem_id="p", problem="q", steps=["a", "b", "c"], correct=True,
                     metadata={"mc_first": 0.5})
        sols.append(s)
        for t in (1, 2):
            outcomes[(s.id, t)] = [rng.random() < p for _ in range(64)]
    fixed = [[sum(outcomes[(s.id, 1)]) / 64, sum(outcomes[(s.id, 2)]) / 64, 1.0] for s in sols]

    def flips(guard: float | None) -> tuple[int, int]:
        rule = StoppingRule(**GUARD, chunk=4, confidence=0.95, denominator_guard=guard)
        values, used = replay_adaptive(outcomes, sols, k_thresholds=[(1.0, 64)], rule=rule)
        return sum(rpe_labels(0.5, v.mc)[1] != rpe_labels(0.5, f)[1] for v, f in zip(values, fixed)), used

    exact_denominators, used_exact = flips(0.0)  # the first step always runs to K
    guarded, used_guarded = flips(0.1)
    plain, used_plain = flips(None)
    slack = 3 * (0.1 * 0.9 / n) ** 0.5
    assert exact_denominators <= (0.05 + slack) * n, exact_denominators
    assert guarded <= exact_denominators + (0.1 + slack) * n, (guarded, exact_denominators)
    assert plain > guarded + 10, (plain, guarded)  # without the guard, overstated denominators flip more
    assert used_plain < used_guarded < used_exact


# --- the joint rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", [UNIFORM, JEFFREYS])
@pytest.mark.parametrize("cp,np_,c,n,k", [(4, 4, 3, 4, 64), (10, 16, 6, 12, 32), (3, 20, 2, 12, 64), (8, 8, 8, 8, 16)])
def test_joint_flip_probability_matches_simulation(prior, cp: int, np_: int, c: int, n: int, k: int) -> None:
    rng = np.random.default_rng(7)
    p_prev = rng.beta(cp + prior[0], np_ - cp + prior[1], size=200_000)
    p_cur = rng.beta(c + prior[0], n - c + prior[1], size=200_000)
    prev_total = cp + rng.binomial(k - np_, p_prev)
    total = c + rng.binomial(k - n, p_cur)
    fixed = total / k >= 0.8 * prev_total / k - TOLERANCE
    stored = c / n >= 0.8 * cp / np_ - TOLERANCE
    want = float(np.mean(fixed != stored))
    assert joint_flip_probability(cp, np_, c, n, k, 0.8, prior) == pytest.approx(want, abs=0.005)


@pytest.mark.parametrize("k", [4, 6, 9])
def test_joint_flip_probability_is_zero_exactly_when_every_rest_agrees(k: int) -> None:
    for np_, n in itertools.product(range(1, k + 1), repeat=2):
        for cp, c in itertools.product(range(1, np_ + 1), range(n + 1)):
            stored = rpe_labels(cp / np_, [c / n, 1.0])[0]
            finals = {rpe_labels((cp + xp) / k, [(c + x) / k, 1.0])[0]
                      for xp in range(k - np_ + 1) for x in range(k - n + 1)}
            flip = joint_flip_probability(cp, np_, c, n, k, 0.8)
            assert (flip == 0.0) == (finals == {stored}), (cp, np_, c, n, k)
    with pytest.raises(ValueError):
        joint_flip_probability(0, 4, 1, 4, 8, 0.8)  # a dead previous step has no label to settle


def test_joint_rule_samples_the_count_that_weighs_more() -> None:
    rule = StoppingRule(confidence=0.9)
    opts = dict(t=2, n_steps=3, solution_correct=True)
    # far apart: settled at once, whatever the counts
    assert rule.decide(0, 4, 64, 1.0, **opts, parent=(12, 12)) == MORE  # ... except an open zero event
    assert rule.decide(12, 12, 64, 1.0, **opts, parent=(12, 12)) == STOP
    # a neutral step on an early-stopped denominator: the denominator (4 draws) is the vaguer count
    assert spread(3, 4, 64, JEFFREYS) * 0.8 ** 2 > spread(12, 20, 64, JEFFREYS)
    assert rule.decide(12, 20, 64, 0.75, **opts, parent=(3, 4)) == PARENT
    # ... and a vague step on a sharp denominator samples itself
    assert rule.decide(3, 4, 64, 0.75, **opts, parent=(30, 40)) == MORE
    # the step itself at its budget: only its previous step can still move the label
    assert rule.decide(38, 64, 64, 0.75, **opts, parent=(3, 4)) == PARENT
    # both at the budget: the fixed label, stop
    assert rule.decide(38, 64, 64, 0.75, **opts, parent=(48, 64)) == STOP
    # no parent (the first step) or denominator="guard": the one-step rule
    for c, n in [(12, 20), (20, 20)]:
        assert rule.decide(c, n, 64, 0.75, **opts) == (STOP if rule.stop(c, n, 64, 0.75, **opts) else MORE)


def _chains(n: int, seed: int, k: int = 32):
    """Solutions of 4 steps whose 3 sampled steps have success rates drawn around a neutral chain."""
    rng = random.Random(seed)
    sols, outcomes = [], {}
    for i in range(n):
        s = Solution(id=f"s{i}", problem_id="p", problem="q", steps=["a", "b", "c", "d"], correct=rng.random() < 0.5,
                     metadata={"mc_first": 0.5})
        p = rng.uniform(0.2, 0.9)
        for t in (1, 2, 3):
            p = p if rng.random() < 0.7 else p * rng.choice([0.0, 0.3, 0.6, 1.2])  # mostly neutral steps
            outcomes[(s.id, t)] = [rng.random() < min(p, 1.0) for _ in range(k)]
        sols.append(s)
    return sols, outcomes


def _fixed_values(sols, outcomes, k: int):
    out = []
    for s in sols:
        mc, alive = [], True
        for t in (1, 2, 3):
            mc.append(sum(outcomes[(s.id, t)]) / k if alive else 0.0)
            alive = alive and mc[-1] > 0
        out.append(mc + [float(bool(s.correct)) if alive else 0.0])
    return out


def test_exact_joint_rule_reproduces_every_fixed_label() -> None:
    """Without a confidence the joint rule stops only when both counts' every rest gives the stored label."""
    sols, outcomes = _chains(200, seed=8)
    values, used = replay_adaptive(outcomes, sols, k_thresholds=[(1.0, 32)], rule=StoppingRule(confidence=None))
    for v, fixed in zip(values, _fixed_values(sols, outcomes, 32)):
        assert rpe_labels(0.5, v.mc) == rpe_labels(0.5, fixed), v.solution_id
    assert used < 3 * 32 * len(sols)  # fewer draws than the fixed run, which samples every step to K


def test_joint_rule_confidence_bounds_label_flips() -> None:
    """At confidence 0.9 the share of labels that differ from the fixed run's stays near its bound, for fewer draws."""
    sols, outcomes = _chains(300, seed=9)
    fixed = _fixed_values(sols, outcomes, 32)
    values, used = replay_adaptive(outcomes, sols, k_thresholds=[(1.0, 32)], rule=StoppingRule(confidence=0.9))
    flips = sum(a != b for v, f in zip(values, fixed) for a, b in zip(rpe_labels(0.5, v.mc), rpe_labels(0.5, f)))
    labels = 4 * len(sols)
    assert flips <= (0.1 + 3 * (0.1 * 0.9 / labels) ** 0.5) * labels, flips
    _, used_exact = replay_adaptive(outcomes, sols, k_thresholds=[(1.0, 32)], rule=StoppingRule(confidence=None))
    assert used < used_exact


# --- the replay -------------------------------------------------------------------------------------------------


def test_look_schedule_and_rule_validation() -> None:
    assert look_schedule(16, 4) == [4, 8, 12, 16] and look_schedule(10, 4) == [4, 8, 10]
    with pytest.raises(ValueError):
        look_schedule(8, 0)
    assert look_schedule(16, 8, first=4) == [4, 12, 16] and StoppingRule().looks(20) == [4, 12, 20]
    for bad in (dict(bound="nope"), dict(zero_event="sometimes"), dict(confidence=1.0), dict(prior=(0.0, 1.0)),
                dict(denominator_guard=1.5), dict(denominator="nope"), dict(first_chunk=0),
                dict(bound="wilson")):  # the joint rule is a predictive one
        with pytest.raises(ValueError):
            StoppingRule(**bad)


def test_config_section_builds_the_rule() -> None:
    from genprm.labeling.config import AdaptiveConfig

    cfg = AdaptiveConfig()
    rule = StoppingRule.from_config(cfg)
    assert rule == StoppingRule()  # the config's defaults are the rule's
    assert (rule.prior, rule.zero_event, rule.denominator, rule.bound, rule.looks(64)[:3]) == (
        JEFFREYS, "relevant", "joint", "predictive", [4, 12, 20])
    assert StoppingRule.from_config(AdaptiveConfig(chunk=2, denominator="guard")).denominator == "guard"
    with pytest.raises(ValueError, match="prior"):
        AdaptiveConfig(prior=(0.0, 1.0))
    with pytest.raises(ValueError):
        AdaptiveConfig(zero_event="sometimes")
    with pytest.raises(ValueError, match="denominator: guard"):
        AdaptiveConfig(bound="wilson")
    assert AdaptiveConfig(bound="wilson", denominator="guard").bound == "wilson"


def test_replay_exact_only_reproduces_fixed_labels_on_same_samples() -> None:
    """With the exact bound only, the replayed labels equal the fixed run's where denominators agree."""
    k_thr = [(1.0, 16)]
    sols = [
        Solution(id="a", problem_id="p", problem="q", steps=["s1", "s2", "s3"], correct=True,
                 metadata={"mc_first": 0.5}),
        Solution(id="b", problem_id="p", problem="q", steps=["s1", "s2"], correct=False, metadata={"mc_first": 0.5}),
    ]
    outcomes = {("a", 1): [True] * 12 + [False] * 4, ("a", 2): [True, False] * 8, ("b", 1): [False] * 16}
    exact = StoppingRule(**GUARD, chunk=4, confidence=None, denominator_guard=None)
    values, used = replay_adaptive(outcomes, sols, k_thresholds=k_thr, rule=exact)
    a, b = values
    # a, step 1: 4/4 after one chunk: c/K = 4/16 < 0.4, not settled; 8/8 -> 8/16 >= 0.4: settled at 8
    # a, step 2: tau = 0.8 * 1.0; after 8 draws 4 correct: (4 + 8) / 16 < 0.8, settled at 0
    assert a.k == [8, 8, 0] and a.mc == [1.0, 0.5, 1.0]
    # b, step 1 (the last sampled step of an incorrect solution: the zero event decides no label):
    # all wrong; (0 + 16 - n) / 16 < 0.4 first at n = 12
    assert b.k == [12, 0] and b.mc == [0.0, 0.0]
    assert used == 8 + 8 + 12
    assert rpe_labels(b.mc_first, b.mc) == [0, 0] and rpe_labels(a.mc_first, a.mc)[0] == 1
    # b correct instead: a stored 0 would end the path and turn its last label from 1 to 0, so it samples to K
    b_correct = Solution(**{**sols[1].model_dump(), "correct": True})
    outcomes[("b", 1)] = [False] * 15 + [True]
    values, _ = replay_adaptive(outcomes, [b_correct], k_thresholds=k_thr, rule=exact)
    assert values[0].k == [16, 0] and values[0].mc == [1 / 16, 1.0]
