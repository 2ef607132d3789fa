"""The direct generative PRM (no chain of thought): each step answered with ``\\boxed{Yes}``/``No``.

The conversation is GenPRM's (:func:`genprm.conversation.build_messages`) with
:data:`~genprm.conversation.DIRECT_SYSTEM_PROMPT`; the assistant turn of step t is scored, not
generated: the reward is the softmax of the log-probabilities of ``\\boxed{Yes}`` and
``\\boxed{No}`` from ``Generator.score_continuations``. Earlier steps' turns hold the model's own
verdicts (``\\boxed{Yes}`` when its reward was >= 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from genprm.conversation import DIRECT_SYSTEM_PROMPT, build_messages
from genprm.engine.base import GenerationRequest, Generator
from genprm.logs import progress
from genprm.prm.base import check_inputs

__all__ = ["DirectPRM", "YES", "NO"]

YES, NO = "\\boxed{Yes}", "\\boxed{No}"


class DirectPRM:
    def __init__(self, generator: Generator, *, style: Literal["code", "card"] = "code") -> None:
        self.generator = generator
        self.style = style

    def score(self, problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        check_inputs(problems, solutions)
        out = []
        for problem, steps in progress(zip(problems, solutions), desc="direct prm", total=len(problems)):
            turns: list[str] = []
            rewards = []
            for t in range(1, len(steps) + 1):
                messages = build_messages(problem, list(steps[:t]), turns, style=self.style, system=DIRECT_SYSTEM_PROMPT)
                yes, no = self.generator.score_continuations(GenerationRequest(messages=messages), [YES, NO])
                m = max(yes, no)
                p = math.exp(yes - m) / (math.exp(yes - m) + math.exp(no - m))
                rewards.append(p)
                turns.append(YES if p >= 0.5 else NO)
            out.append(rewards)
        return out
