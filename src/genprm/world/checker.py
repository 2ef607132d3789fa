"""The exact checker of the embedded world.

Given a world problem and any solution text (or its list of steps), :func:`check_solution`
judges every step on its own terms and returns:

- ``first_error``: 0-based index of the earliest wrong step, -1 if none (ProcessBench's label);
- ``step_errors``: for each step, ``None`` or the kind of its error;
- ``final_answer`` and ``final_correct``.

Step ``i`` (0-based) must carry out operation ``i`` of the chain as ``left op right = result``.
Error kinds, checked in this order (a step gets the first that applies):

``format``      the step is not ``<int> <op> <int> = <int>`` (optionally followed by the answer sentence);
``extra``       a step after the chain's last operation;
``copy``        the operator or the right operand differs from the problem's, or the left operand
                differs from the previous step's result (the first operand for step 0);
``arithmetic``  the result is not ``left op right``;
``answer``      the answer sentence is premature (before the last operation), disagrees with the
                step's own result, or is missing from the last step of a solution that stops.

Steps after an error are judged locally: a later step that correctly uses a wrong earlier
result is not itself wrong (the error is carried forward, not repeated). An empty solution
counts as one empty step with a ``format`` error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genprm.steps import parse_steps
from genprm.world.problems import OPS, apply_op, parse_problem

__all__ = ["ERROR_KINDS", "CheckResult", "check_solution", "parse_step", "final_answer_of"]

ERROR_KINDS = ("format", "extra", "copy", "arithmetic", "answer")

_STEP = re.compile(
    r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)\s*(?:\.\s*The answer is\s+(-?\d+)\s*\.?)?\s*$"
)
_ANSWER = re.compile(r"The answer is\s+(-?\d+)")


@dataclass(frozen=True)
class ParsedStep:
    left: int
    op: str
    right: int
    result: int
    answer: int | None


@dataclass
class CheckResult:
    first_error: int
    step_errors: list[str | None]
    final_answer: str | None
    final_correct: bool
    answer: int
    n_ops: int
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def first_error_kind(self) -> str | None:
        return None if self.first_error < 0 else self.step_errors[self.first_error]

    @property
    def step_labels(self) -> list[int]:
        """1 for a step that is correct and comes before the first error, else 0 (ProcessBench semantics)."""
        cut = len(self.step_errors) if self.first_error < 0 else self.first_error
        return [1 if i < cut else 0 for i in range(len(self.step_errors))]


def parse_step(text: str) -> ParsedStep | None:
    m = _STEP.match(text)
    if not m or m.group(2) not in OPS:
        return None
    ans = m.group(5)
    return ParsedStep(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), None if ans is None else int(ans))


def final_answer_of(text: str) -> str | None:
    """The number of the last ``The answer is N`` sentence, or None."""
    found = _ANSWER.findall(text)
    return found[-1] if found else None


def check_solution(problem: str, solution: str | list[str]) -> CheckResult:
    """Judge a solution to a world problem exactly (see the module docstring)."""
    chain = parse_problem(problem)
    n_ops = len(chain.ops)
    steps = parse_steps(solution) if isinstance(solution, str) else list(solution)
    if not steps:
        steps = [""]
    errors: list[str | None] = []
    prev: int | None = chain.operands[0]
    for i, text in enumerate(steps):
        parsed = parse_step(text)
        if parsed is None:
            errors.append("format")
            prev = None
            continue
        if i >= n_ops:
            errors.append("extra")
        elif (
            parsed.op != chain.ops[i]
            or parsed.right != chain.operands[i + 1]
            or (prev is not None and parsed.left != prev)
        ):
            errors.append("copy")
        elif parsed.result != apply_op(parsed.left, parsed.op, parsed.right):
            errors.append("arithmetic")
        elif parsed.answer is not None and (i < n_ops - 1 or parsed.answer != parsed.result):
            errors.append("answer")
        elif parsed.answer is None and i == len(steps) - 1:
            errors.append("answer")  # the solution stops without stating its answer
        else:
            errors.append(None)
        prev = parsed.result
    full_text = solution if isinstance(solution, str) else "\n".join(steps)
    final = final_answer_of(full_text)
    first = next((i for i, e in enumerate(errors) if e is not None), -1)
    kinds: dict[str, int] = {}
    for e in errors:
        if e is not None:
            kinds[e] = kinds.get(e, 0) + 1
    return CheckResult(
        first_error=first,
        step_errors=errors,
        final_answer=final,
        final_correct=final is not None and int(final) == chain.answer,
        answer=chain.answer,
        n_ops=n_ops,
        kinds=kinds,
    )
