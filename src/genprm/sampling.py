"""Step-forced policy sampling: the first part of the GenPRM method.

The policy answers each problem with its assistant turn pre-filled with ``Step 1:``, so the
answer comes as ``Step 1: ...\\nStep 2: ...``; a :class:`~genprm.config.PolicyPrompt` may put a
system turn and worked examples before the problem. :func:`sample_solutions` makes one batched
engine call for all problems (``n`` samples each), splits the answers into steps, extracts
the final answers and grades them against the references.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from genprm.config import PolicyPrompt, policy_messages
from genprm.engine import GenerationRequest, Generator
from genprm.records import Problem, Solution
from genprm.steps import STEP_PREFIX, parse_steps

__all__ = ["policy_request", "sample_solutions"]

log = logging.getLogger(__name__)


def policy_request(
    problem: str,
    *,
    n: int = 1,
    temperature: float = 0.8,
    top_p: float = 1.0,
    top_k: int | None = None,
    max_tokens: int = 512,
    seed: int | None = None,
    prompt: PolicyPrompt | None = None,
) -> GenerationRequest:
    """The step-forced request for one problem (chat turns, assistant pre-filled with ``Step 1:``)."""
    return GenerationRequest(
        messages=policy_messages(problem, prompt),
        assistant_prefix=STEP_PREFIX,
        n=n,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        seed=seed,
    )


def sample_solutions(
    generator: Generator,
    problems: Sequence[Problem],
    *,
    n: int = 1,
    temperature: float = 0.8,
    top_p: float = 1.0,
    top_k: int | None = None,
    max_tokens: int = 512,
    seed: int = 0,
    prompt: PolicyPrompt | None = None,
    name: str = "policy",
    id_offset: int = 0,
    grade_timeout: float = 5.0,
) -> list[Solution]:
    """``n`` graded step-forced solutions per problem, ids ``{problem_id}/{id_offset + j}``.

    Request ``i`` gets seed ``seed + i`` so results do not depend on batch composition.
    """
    from genprm.grading import extract_answer, grade_pairs

    requests = [
        policy_request(
            p.problem, n=n, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
            seed=seed + i, prompt=prompt,
        )
        for i, p in enumerate(problems)
    ]
    outputs = generator.generate(requests)
    solutions: list[Solution] = []
    for p, outs in zip(problems, outputs):
        for j, c in enumerate(outs):
            text = STEP_PREFIX + c.text
            steps = parse_steps(text)
            solutions.append(
                Solution(
                    id=f"{p.id}/{id_offset + j}",
                    problem_id=p.id,
                    problem=p.problem,
                    steps=steps or [c.text.strip()],
                    final_answer=extract_answer(text),
                    generator=name,
                    metadata={"finish_reason": c.finish_reason},
                )
            )
    by_id = {p.id: p for p in problems}
    pairs = [(by_id[s.problem_id].answer or "", s.final_answer or "") for s in solutions]
    verdicts = grade_pairs(pairs, timeout=grade_timeout) if pairs else []
    for s, ok in zip(solutions, verdicts):
        s.correct = bool(ok) and s.final_answer is not None
    return solutions
