"""Critic refinement: the GenPRM's critique drives the policy's revisions, against self-refinement.

Every problem starts from the same policy solution (turn 0). Each of ``turns`` turns:

- **critic**: the GenPRM verifies the current solution (its paths, one by default); when every
  step scores at least ``threshold`` the solution is kept as it is. Otherwise the policy revises
  it at the first step scored below the threshold, given the ``<analyze>`` text of that step;
- **self** (the baseline, no critic): the policy revises every solution without outside
  feedback, at a place it cannot know to be wrong.

How the policy revises (``mode``):

- ``feedback`` (chat policies, the paper's setup): the conversation goes on with a user turn
  holding the critique (:data:`CRITIC_PROMPT`: the flagged paragraph and its analysis) or, for
  the baseline, :data:`SELF_PROMPT`; the policy writes a whole new step-forced solution.
- ``resample`` (any policy, e.g. the embedded world's, which cannot read a critique): the steps
  before the flagged one are kept and the policy continues step-forced from there; the
  baseline cuts at a step drawn uniformly (seeded), the most a critic-free revision can know.

Accuracy per turn (percent, turn 0 included) is what :func:`refinement_curves` returns. Requests
are batched per turn and seeded by (seed, arm, turn, problem index), so results do not depend on
batch composition::

    report = refine(policy, verifier, problems, first_solutions, RefinementOptions(turns=3))
    report.accuracy["critic"]     # [turn 0, turn 1, ...]
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from genprm.config import PolicyPrompt, policy_messages
from genprm.engine import GenerationRequest, Generator
from genprm.records import Problem, Solution
from genprm.steps import STEP_PREFIX, format_steps, parse_steps
from genprm.verifier import SolutionVerification, derive_seed, forced_summary

__all__ = ["CRITIC_PROMPT", "SELF_PROMPT", "RefinementOptions", "RefinementReport", "analysis_of", "refine"]

log = logging.getLogger(__name__)

CRITIC_PROMPT = (
    "A reviewer checked your solution and found a problem in paragraph {k}:\n{analysis}\n"
    "Revise your solution. Write the complete corrected solution step by step."
)
SELF_PROMPT = (
    "Review your solution step by step. If you find a mistake, correct it. "
    "Write the complete solution step by step."
)
_ANALYZE = re.compile(r"<analyze>\s*(.*?)\s*(?:</analyze>|$)", re.DOTALL)


class _Verifier(Protocol):
    def verify(self, solutions: Sequence[tuple[str, Sequence[str]]], *, show_progress: bool = True) -> list[SolutionVerification]: ...


@dataclass(frozen=True)
class RefinementOptions:
    turns: int = 3
    mode: Literal["feedback", "resample"] = "feedback"
    threshold: float = 0.5
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    prompt: PolicyPrompt | None = None
    """The policy's system turn and worked examples (``sampling.prompt``), before the problem in both modes."""

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"turns must be >= 1, got {self.turns}")
        if self.mode not in ("feedback", "resample"):
            raise ValueError(f"mode must be 'feedback' or 'resample', got {self.mode!r}")


@dataclass
class RefinementReport:
    accuracy: dict[str, list[float]]
    """Percent correct per turn (index 0: the starting solutions) for ``critic`` and ``self``."""
    revised: dict[str, list[int]] = field(default_factory=dict)
    """Solutions revised in each turn (1..turns)."""
    final: dict[str, list[Solution]] = field(default_factory=dict)
    forced: dict = field(default_factory=dict)
    """:func:`genprm.verifier.forced_summary` over every critic verification of every turn."""


def analysis_of(turn_text: str) -> str:
    """The ``<analyze>`` text of a GenPRM turn (without the forced "Let's analyze ..." opening)."""
    m = _ANALYZE.search(turn_text)
    text = m.group(1).strip() if m else turn_text.strip()
    head = re.match(r"Let's analyze the Paragraph \d+ step by step:\s*", text)
    return text[head.end() :] if head else text


def _accuracy(solutions: Sequence[Solution]) -> float:
    return 100.0 * sum(bool(s.correct) for s in solutions) / len(solutions) if solutions else 0.0


def _request(problem: Problem, sol: Solution, cut: int, analysis: str | None, arm: str, turn: int, i: int,
             opts: RefinementOptions) -> GenerationRequest:
    seed = derive_seed(opts.seed, arm, turn, i)
    common = dict(n=1, temperature=opts.temperature, top_p=opts.top_p, max_tokens=opts.max_tokens, seed=seed)
    if opts.mode == "resample":
        kept = format_steps(sol.steps[:cut])
        prefix = (kept + "\n" if kept else "") + f"Step {cut + 1}:"
        return GenerationRequest(messages=policy_messages(problem.problem, opts.prompt), assistant_prefix=prefix,
                                 **common)
    note = SELF_PROMPT if analysis is None else CRITIC_PROMPT.format(k=cut + 1, analysis=analysis)
    messages = [
        *policy_messages(problem.problem, opts.prompt),
        {"role": "assistant", "content": format_steps(sol.steps)},
        {"role": "user", "content": note},
    ]
    return GenerationRequest(messages=messages, assistant_prefix=STEP_PREFIX, **common)


def _revise(policy: Generator, jobs: list[tuple[int, Problem, Solution, int, str | None]], arm: str, turn: int,
            opts: RefinementOptions, grade_timeout: float) -> list[Solution]:
    from genprm.grading import extract_answer, grade_pairs

    if not jobs:
        return []
    requests = [_request(p, s, cut, analysis, arm, turn, i, opts) for i, p, s, cut, analysis in jobs]
    outputs = policy.generate(requests)
    revised = []
    for (i, p, s, cut, _), req, outs in zip(jobs, requests, outputs):
        text = req.assistant_prefix + outs[0].text
        steps = parse_steps(text) or [outs[0].text.strip()]
        revised.append(Solution(
            id=f"{s.id}/{arm}{turn}", problem_id=p.id, problem=p.problem, steps=steps,
            final_answer=extract_answer(text), generator=s.generator,
            metadata={"revised_from": s.id, "cut": cut, "turn": turn},
        ))
    verdicts = grade_pairs([(jobs[k][1].answer or "", r.final_answer or "") for k, r in enumerate(revised)],
                           timeout=grade_timeout, progress=False)
    for r, ok in zip(revised, verdicts):
        r.correct = bool(ok) and r.final_answer is not None
    return revised


def refine(policy: Generator, verifier: _Verifier, problems: Sequence[Problem], solutions: Sequence[Solution],
           opts: RefinementOptions | None = None, *, grade_timeout: float = 5.0) -> RefinementReport:
    """Run both arms for ``opts.turns`` turns from ``solutions`` (one graded solution per problem)."""
    opts = opts or RefinementOptions()
    if len(problems) != len(solutions):
        raise ValueError(f"{len(problems)} problems but {len(solutions)} solutions")
    for i, (p, s) in enumerate(zip(problems, solutions)):
        if s.problem_id != p.id:
            raise ValueError(f"solution {i} ({s.id}) is for problem {s.problem_id}, not {p.id}")
        if not s.steps:
            raise ValueError(f"solution {i} ({s.id}) has no steps")
    current = {"critic": list(solutions), "self": list(solutions)}
    report = RefinementReport(accuracy={arm: [_accuracy(solutions)] for arm in current},
                              revised={arm: [] for arm in current})
    verified: list[SolutionVerification] = []
    for turn in range(1, opts.turns + 1):
        # critic: verify, revise at the first flagged step
        results = verifier.verify([(s.problem, s.steps) for s in current["critic"]], show_progress=False)
        verified += results
        jobs = []
        for i, (p, s, r) in enumerate(zip(problems, current["critic"], results)):
            first = r.first_error(opts.threshold)
            if first >= 0:
                jobs.append((i, p, s, first, analysis_of(r.steps[first].paths[0].text)))
        # self: revise everything, no critic
        rng = random.Random(derive_seed(opts.seed, "self-cut", turn))
        self_jobs = [(i, p, s, rng.randrange(len(s.steps)) if opts.mode == "resample" else 0, None)
                     for i, (p, s) in enumerate(zip(problems, current["self"]))]
        for arm, arm_jobs in (("critic", jobs), ("self", self_jobs)):
            for (i, *_), new in zip(arm_jobs, _revise(policy, arm_jobs, arm, turn, opts, grade_timeout)):
                current[arm][i] = new
            report.revised[arm].append(len(arm_jobs))
            report.accuracy[arm].append(_accuracy(current[arm]))
        log.info("turn %d: critic %.1f%% (%d revised), self %.1f%%", turn, report.accuracy["critic"][-1],
                 len(jobs), report.accuracy["self"][-1])
    report.final = current
    report.forced = forced_summary(verified)
    return report
