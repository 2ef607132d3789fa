"""Staged review loops: a teacher or GenPRM writes, its python code is executed, it goes on.

Two drivers, generic over any :class:`~genprm.engine.base.Generator` and anything with a
sandbox session's ``run(code) -> ExecResult`` (one session per solution, so the code namespace
persists across its steps, as in the released GenPRM code)::

    with sandbox.session() as session:
        turns = run_per_step_review(generator, session, problem, steps)
        text, first_error = run_whole_solution_review(generator, session, problem, steps)

:func:`run_per_step_review` follows the released GenPRM inference code, one assistant turn per
step: ``analyze_prefix(t)`` (sent without its trailing space, :func:`~genprm.conversation.prompt_prefix`)
-> generate until ``</analyze>\\n``; ``VERIFY_PREFIX`` -> generate
until a code block closes (the code is executed and its ``[Code Output]`` appended) or the
judgement closes (``</output>\\n``); after ``max_code_rounds`` executed blocks, or when a stage
ends without its stop string (length or end of turn), the turn falls back to the analysis
followed by ``FALLBACK_JUDGEMENT`` and only the judgement is generated.

:func:`run_whole_solution_review` sends :func:`~genprm.rationale.prompts.whole_solution_prompt`
and generates until each code block closes, executes it, appends its output and goes on until
the teacher ends; the boxed 1-based index is returned 0-based.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    FALLBACK_JUDGEMENT,
    OUTPUT_STOP,
    VERIFY_PREFIX,
    analyze_prefix,
    build_messages,
    join_generated,
    parse_judgement,
    prompt_prefix,
)
from genprm.conversation import code_output_block as text_output_block
from genprm.engine.base import Completion, GenerationRequest, Generator
from genprm.rationale.prompts import (
    earliest_error_to_zero_based,
    parse_whole_solution,
    whole_solution_prompt,
)
from genprm.sandbox.output import NO_CODE_OUTPUT, ExecResult, code_output_block

__all__ = ["CodeRunner", "run_per_step_review", "run_whole_solution_review", "last_code_block"]

log = logging.getLogger(__name__)

_CODE_OPEN = "```python\n"


class CodeRunner(Protocol):
    """What the drivers need of a sandbox session."""

    def run(self, code: str, timeout: float | None = None) -> ExecResult: ...


def last_code_block(text: str) -> str | None:
    """The code of the python block that ``text`` ends with (``text`` ends with ``CODE_STOP``)."""
    if not text.endswith(CODE_STOP):
        return None
    start = text.rfind(_CODE_OPEN)
    if start < 0:
        return None
    return text[start + len(_CODE_OPEN) : len(text) - len(CODE_STOP)]


def _execute(session: CodeRunner, text: str) -> str:
    """The ``[Code Output]`` block for the code block ``text`` ends with."""
    code = last_code_block(text)
    if code is None or not code.strip():
        return text_output_block(NO_CODE_OUTPUT)
    return code_output_block(session.run(code))


def _one(generator: Generator, request: GenerationRequest) -> Completion:
    [[completion]] = generator.generate([request])
    return completion


def run_per_step_review(
    generator: Generator,
    sandbox_session: CodeRunner,
    problem: str,
    steps: Sequence[str],
    max_code_rounds: int = 3,
    *,
    temperature: float = 0.0,
    max_tokens: int = 2048,
    style: Literal["code", "card"] = "code",
) -> list[dict[str, Any]]:
    """Review every step in the GenPRM conversation format, executing the code it writes.

    Returns one dict per step: ``step`` (0-based), ``text`` (the whole assistant turn),
    ``verdict`` (True/False from the judgement, None when none could be parsed),
    ``code_rounds`` (blocks executed) and ``fallback`` (whether the turn fell back to
    ``FALLBACK_JUDGEMENT``). Later turns see the earlier ones as assistant messages.
    """
    if not steps:
        raise ValueError("a solution needs at least one step")
    turns: list[str] = []
    out: list[dict[str, Any]] = []
    for t in range(1, len(steps) + 1):
        messages = build_messages(problem, list(steps[:t]), turns, style=style)

        def request(prefix: str, stop: tuple[str, ...]) -> GenerationRequest:
            return GenerationRequest(
                messages=messages,
                assistant_prefix=prefix,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=stop,
                include_stop=True,
            )

        prefix = analyze_prefix(t)
        done = _one(generator, request(prompt_prefix(prefix), (ANALYZE_STOP,)))
        analysis = join_generated(prefix, done.text)
        turn, rounds, fallback = analysis, 0, done.stop_string != ANALYZE_STOP
        if not fallback:
            turn += VERIFY_PREFIX
            while True:
                done = _one(generator, request(turn, (CODE_STOP, OUTPUT_STOP)))
                turn += done.text
                if done.stop_string == OUTPUT_STOP:
                    break
                if done.stop_string != CODE_STOP or rounds >= max_code_rounds:
                    fallback = True
                    break
                turn += _execute(sandbox_session, turn)
                rounds += 1
        if fallback:
            log.info("step %d: falling back to the analysis and a forced judgement", t)
            if not analysis.endswith("\n"):
                analysis += "\n"
            turn = analysis + FALLBACK_JUDGEMENT
            turn += _one(generator, request(turn, (OUTPUT_STOP,))).text
        turns.append(turn)
        out.append(
            {"step": t - 1, "text": turn, "verdict": parse_judgement(turn), "code_rounds": rounds, "fallback": fallback}
        )
    return out


def run_whole_solution_review(
    generator: Generator,
    sandbox_session: CodeRunner,
    problem: str,
    steps: Sequence[str],
    max_code_rounds: int = 3,
    *,
    temperature: float = 0.0,
    max_tokens: int = 8192,
) -> tuple[str, int | None]:
    """The teacher's whole-solution review and its earliest error, **0-based** (-1: none).

    At most ``max_code_rounds * len(steps)`` code blocks are executed; a block the teacher opens
    after that ends the review. The earliest error is None when the review has no boxed index
    or one outside ``-1, 1..len(steps)``. ``max_tokens`` bounds each generation call.
    """
    messages = [{"role": "user", "content": whole_solution_prompt(problem, steps)}]
    text, rounds, limit = "", 0, max_code_rounds * len(steps)
    while True:
        done = _one(
            generator,
            GenerationRequest(
                messages=messages,
                assistant_prefix=text,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=(CODE_STOP,),
                include_stop=True,
            ),
        )
        text += done.text
        if done.stop_string != CODE_STOP:
            break
        if rounds >= limit:
            log.warning("whole-solution review stopped after %d code blocks", rounds)
            break
        text += _execute(sandbox_session, text)
        rounds += 1
    _, index = parse_whole_solution(text, n_paragraphs=len(steps))
    if index is None or not (index == -1 or 1 <= index <= len(steps)):
        log.warning("whole-solution review has no usable earliest-error index (%r)", index)
        return text, None
    return text, earliest_error_to_zero_based(index)
