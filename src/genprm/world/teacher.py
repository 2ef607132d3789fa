"""The embedded world's rule teacher: a ``Generator`` that writes rationales like an LLM teacher.

It lets the real rationale-synthesis and verification code paths run unchanged on the world.
It speaks two formats, recognised from the request:

**The GenPRM per-step conversation** (chat ``messages`` as built by
:func:`genprm.conversation.build_messages`, the turn being written is the one after the last
assistant message; the problem is the first line of user turn 1). It continues the assistant
turn from ``assistant_prefix``, stage by stage:

- after :func:`~genprm.conversation.analyze_prefix`: an analysis of step t in plain words (the
  result it claims, and its answer if it states one), then ``</analyze>\n``;
- after :data:`~genprm.conversation.VERIFY_PREFIX`: python that writes down the claimed result
  (``claim = 14``, and ``answer = ...`` where an answer is due), applies the problem's own
  operation t to the running value ``v`` (``v = 3 + 4`` in paragraph 1, ``v = v * 2`` later: the
  sandbox session keeps ``v`` across paragraphs) and prints whether they agree
  (``print(v == claim)``, ``True``/``False``), then :data:`~genprm.conversation.CODE_STOP`;
- after a ``[Code Output]`` block: ``</verify>\\n`` and the judgement read from that output;
- after :data:`~genprm.conversation.FALLBACK_JUDGEMENT`: ``{Yes}$\\n</output>\\n`` or ``{No}...``.

**The paper's whole-solution review** (one user prompt from
:func:`genprm.rationale.prompts.whole_solution_prompt`, or the same text as a plain ``prompt``):
``### Paragraph k`` sections with ``<analyze>`` and ``<verify>`` (the same code), a conclusion
per paragraph read from its ``[Code Output]``, and finally ``$\\boxed{k}$``, the 1-based index of
the earliest paragraph whose printed check failed, or ``$\\boxed{-1}$``.

How verdicts are decided (the teacher never sees the answer key or the exact checker):

- a verdict is read from the last ``[Code Output]`` of the current turn (per-step) or section
  (whole-solution): ``Yes`` iff the output's last non-empty line is exactly ``True``; ``False``,
  errors, time-outs, empty output and a missing output all give ``No``. A bug in execution
  therefore shows up as wrong verdicts, and a doctored output is followed.
- the fallback judgement (after ``FALLBACK_JUDGEMENT``) follows the same rule, so after an
  analysis without code it is ``No``: the teacher never says Yes without a check that passed.
- ``noise`` flips a verdict with that probability, deterministically per (seed, problem,
  paragraph index, paragraph text), the same way in both formats and in ``score_continuations``.

What a check catches: ``v`` is computed from the problem, not from the solution, so a check
catches arithmetic slips, copy errors (a wrong operand or operator changes the result) and answers
that are wrong or due too early; the first wrong paragraph fails its check and the earliest ``No``
is the first error (what ProcessBench and the RPE labels need), except when a copy error gives the
right result by chance (``0 * 5 = 0`` for ``0 * 4``; 1 of 100 first errors in the world benchmark),
which the check cannot see. A paragraph after the first error usually fails too (its result
follows a wrong value). The code copies only the claimed result from the paragraph and one
operator and operand from the problem: short, so that a tiny GenPRM learns to write it on a CPU.

Answer sentences: the step that carries out the problem's last operation must state the answer
(``The answer is N``), earlier steps must not. In the whole-solution format the teacher sees the
whole solution and judges exactly like the world's checker (the last paragraph must state the
answer; a solution that stops early fails). In the per-step format it cannot see later steps, so
it assumes the step carrying out the last operation is the last one; it differs from the checker
only for (a) a solution that stops early without an answer (the teacher says Yes to its last
step) and (b) a last operation without answer followed by extra steps (the teacher says No one
step earlier than the checker).

Generator details: deterministic (``n`` copies; temperature, top-p/k and seeds are ignored);
``stop`` cuts at the stop string that completes first (kept iff ``include_stop``;
``finish_reason="stop"``); ``max_tokens`` counts whitespace-separated pieces
(:meth:`WorldTeacher.count_tokens`) and cuts with ``finish_reason="length"``; otherwise
``"eos"``. ``token_ids`` is ``[]`` and ``logprobs``/``token_logprobs`` are ``None``: a verifier
falls back to the parsed judgement when no logprobs are available.
:meth:`WorldTeacher.score_continuations` gives 0.0 to the verdict the teacher would write and
``log(1e-6)`` to the other.

Registration: call :func:`register` once (``genprm.engine.registry`` should do it) and use
``create_generator("world-teacher", noise=0.1, seed=3)``.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass


from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    FALLBACK_JUDGEMENT,
    OUTPUT_STOP,
    VERIFY_PREFIX,
    analyze_prefix,
    judgement,
    prompt_prefix,
)
from genprm.engine.base import Completion, EngineError, FinishReason, GenerationRequest
from genprm.engine.prompts import cut_at_stop
from genprm.engine.settings import WorldTeacherSettings
from genprm.rationale.prompts import (
    PARAGRAPH_HEADING,
    WHOLE_SOLUTION_PROMPT_END,
    parse_whole_solution_prompt,
)
from genprm.world.problems import Chain, WorldFormatError, parse_problem

__all__ = ["WorldTeacherSettings", "WorldTeacher", "register", "read_check_output", "LOG_UNLIKELY"]

log = logging.getLogger(__name__)

LOG_UNLIKELY = math.log(1e-6)
"""Log-probability :meth:`WorldTeacher.score_continuations` gives to what the teacher would not write."""

_OUTPUT_HEAD = "[Code Output]\n\n```\n"
_OUTPUT_TAIL = "\n```\n"
_CODE_OPEN = "```python\n"
_STEP = re.compile(
    r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)\s*(?:\.\s*The answer is\s+(-?\d+)\s*\.?)?\s*$"
)
_HEADING = re.compile(r"^### Paragraph (\d+)[ \t]*\n", re.MULTILINE)
_BOXED_INDEX = re.compile(r"\$\\boxed\{-?\d+\}\$")
_OP_WORDS = {"+": "adding", "-": "subtracting", "*": "multiplying the result so far by"}
_MAX_PIECES = 64  # safety bound on the stage loop (a turn has fewer than 10 pieces)


def read_check_output(output: str | None) -> bool:
    """What the teacher reads in a code output: True iff its last non-empty line is ``True``."""
    if output is None:
        return False
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return bool(lines) and lines[-1] == "True"


def _last_output(text: str) -> str | None:
    """The content of the last complete ``[Code Output]`` block in ``text``, or None."""
    start = text.rfind(_OUTPUT_HEAD)
    if start < 0:
        return None
    rest = text[start + len(_OUTPUT_HEAD) :]
    if _CODE_OPEN not in rest and rest.endswith(_OUTPUT_TAIL):  # the block ends the text
        return rest[: -len(_OUTPUT_TAIL)]
    end = rest.find(_OUTPUT_TAIL)
    return None if end < 0 else rest[:end]


def _ends_with_output(text: str) -> bool:
    """Whether ``text`` ends with a ``[Code Output]`` block (no code written after it)."""
    start = text.rfind(_OUTPUT_HEAD)
    return start >= 0 and _CODE_OPEN not in text[start:] and text.endswith(_OUTPUT_TAIL)


def _truncate_pieces(text: str, max_pieces: int) -> tuple[str, bool]:
    """``text`` cut after its ``max_pieces``-th whitespace-separated piece, and whether it was cut."""
    for i, m in enumerate(re.finditer(r"\S+", text), start=1):
        if i == max_pieces:
            return text[: m.end()], text[m.end() :].strip() != ""
    return text, False


# ----------------------------------------------------------------------------------------------
# What a paragraph should have written, as python code


@dataclass(frozen=True)
class _Claim:
    result: int
    answer: int | None


def _read_claim(step: str) -> _Claim | None:
    m = _STEP.match(step)
    if not m:
        return None
    ans = m.group(5)
    return _Claim(int(m.group(4)), None if ans is None else int(ans))


@dataclass(frozen=True)
class _Review:
    """How paragraph ``k`` (1-based) is reviewed: its analysis and the python code checking it."""

    analysis: str
    code: str


def _carry_out(chain: Chain, k: int) -> str:
    """The line that applies the problem's operation ``k`` to ``v`` (paragraph 1 starts ``v``)."""
    op, b = chain.ops[k - 1], chain.operands[k]
    return f"v = {chain.operands[0]} {op} {b}" if k == 1 else f"v = v {op} {b}"


def _review(chain: Chain, k: int, step: str, is_last: bool, n_paragraphs: int | None) -> _Review:
    """Review of paragraph ``k`` of a solution; ``n_paragraphs`` is known in the whole-solution format.

    The code keeps the problem's running value in ``v`` (the session persists across paragraphs):
    paragraph k applies the problem's operation k to it and compares it with the claimed result.
    """
    n_ops = len(chain.ops)
    claim = _read_claim(step)
    if k > n_ops:
        what = "is one paragraph too many:" if claim is None else f"claims {claim.result}, but"
        return _Review(
            f"Paragraph {k} {what} the problem has only {n_ops} operations.",
            f"print({k} <= {n_ops})  # paragraph number <= number of operations",
        )
    carry = _carry_out(chain, k)
    if claim is None:
        return _Review(
            f"Paragraph {k} reads {step.strip()!r}, which is not a claim 'a op b = c' carrying out operation {k}.",
            f"{carry}\nprint(False)  # no claim of the form 'a op b = c'",
        )
    lines = [f"claim = {claim.result}"]
    if k < n_ops and claim.answer is not None:
        text = f"Paragraph {k} claims {claim.result}. It also states an answer, {claim.answer}, too early."
        check = "v == claim and False"
    elif (k == n_ops and is_last) or claim.answer is not None:
        text = f"Paragraph {k} claims {claim.result} and the answer {claim.answer}; it is the last operation."
        lines.append(f"answer = {claim.answer}")
        check = "v == claim == answer"
    else:
        text = f"Paragraph {k} claims {claim.result}."
        check = "v == claim"
    comment = ""
    if is_last and n_paragraphs is not None and n_paragraphs < n_ops:
        text += f" The solution ends here, after {n_paragraphs} of the problem's {n_ops} operations."
        check, comment = f"{check} and {n_paragraphs} >= {n_ops}", "  # the solution must finish"
    return _Review(text, "\n".join([*lines, carry, f"print({check}){comment}"]))


# ----------------------------------------------------------------------------------------------
# The teacher


@dataclass(frozen=True)
class _PerStep:
    problem: str
    chain: Chain
    steps: list[str]  # steps 1..t as seen in the user turns
    prefix: str  # the assistant turn written so far

    @property
    def t(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class _Whole:
    problem: str
    chain: Chain
    steps: list[str]
    written: str  # the review written so far


class WorldTeacher:
    """Rule teacher for the embedded world (see the module docstring)."""

    backend = "world-teacher"

    def __init__(self, settings: WorldTeacherSettings | None = None) -> None:
        self.settings = settings or WorldTeacherSettings()

    # -- the Generator protocol ------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        out = []
        for i, request in enumerate(requests):
            try:
                full = self.continuation(request)
            except (ValueError, WorldFormatError) as exc:
                raise EngineError(f"world teacher cannot answer request {i}: {exc}") from exc
            text, cut_by_length = _truncate_pieces(full, request.max_tokens)
            text, stop = cut_at_stop(text, request.stop, request.include_stop)
            reason: FinishReason = "stop" if stop is not None else ("length" if cut_by_length else "eos")
            out.append([Completion(text, [], reason, stop) for _ in range(request.n)])
        return out

    def score_continuations(self, prompt: str | GenerationRequest, candidates: Sequence[str]) -> list[float]:
        """0.0 for what the teacher would write next, ``LOG_UNLIKELY`` for anything else.

        A ``Yes``/``No`` candidate (optionally with spaces, braces or ``$``) in the per-step
        format is scored by the verdict the teacher would write in the current turn (read from
        its last code output, noise applied), wherever the prefix stops; any other candidate
        scores 0.0 iff the teacher's continuation starts with it.
        """
        request = prompt if isinstance(prompt, GenerationRequest) else GenerationRequest(prompt=prompt)
        try:
            context = self._context(request)
            following = self._continue(context)
        except (ValueError, WorldFormatError) as exc:
            raise EngineError(f"world teacher cannot score: {exc}") from exc
        scores = []
        for candidate in candidates:
            word = candidate.strip().strip("{}$").strip()
            if isinstance(context, _PerStep) and word in ("Yes", "No"):
                ok = (word == "Yes") == self._turn_verdict(context, context.prefix)
            else:
                ok = following.startswith(candidate)
            scores.append(0.0 if ok else LOG_UNLIKELY)
        return scores

    def count_tokens(self, text: str) -> int:
        """Number of whitespace-separated pieces (the teacher has no tokenizer)."""
        return len(text.split())

    def close(self) -> None:
        return None

    # -- writing -----------------------------------------------------------------------------

    def continuation(self, request: GenerationRequest) -> str:
        """Everything the teacher would write after the request's prefix (no stop, no length cut)."""
        return self._continue(self._context(request))

    def _continue(self, context: _PerStep | _Whole) -> str:
        written = ""
        for _ in range(_MAX_PIECES):
            if isinstance(context, _PerStep):
                piece = self._per_step_next(context, context.prefix + written)
            else:
                piece = self._whole_next(context, context.written + written)
            if piece is None:
                return written
            written += piece
        raise EngineError("world teacher: the stage loop did not end")  # a bug, not an input error

    def _flip(self, problem: str, k: int, step: str) -> bool:
        noise = self.settings.noise
        if noise <= 0.0:
            return False
        return random.Random(f"{self.settings.seed}\x00{problem}\x00{k}\x00{step}").random() < noise

    def _verdict(self, problem: str, k: int, step: str, output: str | None) -> bool:
        return read_check_output(output) != self._flip(problem, k, step)

    # per-step conversation

    def _turn_verdict(self, ctx: _PerStep, turn: str) -> bool:
        return self._verdict(ctx.problem, ctx.t, ctx.steps[-1], _last_output(turn))

    def _per_step_next(self, ctx: _PerStep, turn: str) -> str | None:
        t = ctx.t
        if "</output>" in turn:
            return None
        if turn.endswith(FALLBACK_JUDGEMENT + "{"):
            return f"{'Yes' if self._turn_verdict(ctx, turn) else 'No'}}}$\n{OUTPUT_STOP}"
        if turn.endswith(FALLBACK_JUDGEMENT):
            return f"{{{'Yes' if self._turn_verdict(ctx, turn) else 'No'}}}$\n{OUTPUT_STOP}"
        if _ends_with_output(turn) or turn.endswith(CODE_STOP):
            return "</verify>\n" + judgement(self._turn_verdict(ctx, turn))
        if turn.endswith(_CODE_OPEN):
            return self._per_step_review(ctx).code + CODE_STOP
        if turn.endswith(ANALYZE_STOP):
            return VERIFY_PREFIX
        if prompt_prefix(turn).endswith(prompt_prefix(analyze_prefix(t))):  # the verifier's prompt ends before the space
            space = "" if turn.endswith(analyze_prefix(t)) else " "
            return space + self._per_step_review(ctx).analysis + "\n" + ANALYZE_STOP
        if turn == "":
            return analyze_prefix(t)
        log.warning("world teacher: unrecognised stage of turn %d (ends %r); writing the judgement", t, turn[-40:])
        closing = "</verify>\n" if "<verify>" in turn and "</verify>" not in turn else ""
        return ("" if turn.endswith("\n") else "\n") + closing + judgement(self._turn_verdict(ctx, turn))

    def _per_step_review(self, ctx: _PerStep) -> _Review:
        return _review(ctx.chain, ctx.t, ctx.steps[-1], ctx.t == len(ctx.chain.ops), None)

    # whole-solution review

    def _whole_reviews(self, ctx: _Whole) -> list[_Review]:
        n = len(ctx.steps)
        return [_review(ctx.chain, k, step, k == n, n) for k, step in enumerate(ctx.steps, start=1)]

    def _section_verdict(self, ctx: _Whole, k: int, section: str) -> bool:
        return self._verdict(ctx.problem, k, ctx.steps[k - 1], _last_output(section))

    def _whole_next(self, ctx: _Whole, text: str) -> str | None:
        n = len(ctx.steps)
        heads = list(_HEADING.finditer(text))
        if not heads:
            return PARAGRAPH_HEADING.format(k=1) + "\n"
        k = int(heads[-1].group(1))
        body = text[heads[-1].end() :]
        if _BOXED_INDEX.search(body):
            return None
        if not 1 <= k <= n:
            raise ValueError(f"the review has a section for paragraph {k} but the solution has {n} paragraphs")
        if body == "":
            return f"<analyze>\n{self._whole_reviews(ctx)[k - 1].analysis}\n</analyze>\n<verify>\n"
        if body.endswith("<verify>\n"):
            return _CODE_OPEN
        if body.endswith(_CODE_OPEN):
            return self._whole_reviews(ctx)[k - 1].code + CODE_STOP
        if _ends_with_output(body) or body.endswith(CODE_STOP):
            return self._conclusion(ctx, k, body) + "</verify>\n\n"
        if not body.endswith("</verify>\n\n"):
            log.warning("world teacher: unrecognised stage of paragraph %d (ends %r); closing it", k, body[-40:])
            return ("" if body.endswith("\n") else "\n") + "</verify>\n\n"
        if k < n:
            return PARAGRAPH_HEADING.format(k=k + 1) + "\n"
        return self._final(ctx, text)

    def _conclusion(self, ctx: _Whole, k: int, section: str) -> str:
        output = _last_output(section)
        verdict = "correct" if self._section_verdict(ctx, k, section) else "incorrect"
        if output is None or not output.strip():
            return f"The code printed nothing I can read, so paragraph {k} is {verdict}.\n"
        last = output.strip().splitlines()[-1].strip().replace("`", "'")[:120]
        return f"The last line of the output is `{last}`, so paragraph {k} is {verdict}.\n"

    def _final(self, ctx: _Whole, text: str) -> str:
        heads = list(_HEADING.finditer(text))
        sections: dict[int, str] = {}
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            sections[int(head.group(1))] = text[head.end() : end]
        for k in range(1, len(ctx.steps) + 1):
            if not self._section_verdict(ctx, k, sections.get(k, "")):
                return (
                    f"The earliest paragraph whose check failed is paragraph {k}, so the earliest error is "
                    f"in paragraph {k}: $\\boxed{{{k}}}$\n"
                )
        return "Every paragraph passed its check, so no error was found: $\\boxed{-1}$\n"

    # reading the request

    def _context(self, request: GenerationRequest) -> _PerStep | _Whole:
        if request.prompt is not None:
            text = request.prompt + request.assistant_prefix
            if "<paragraph_1>" not in text:
                raise ValueError(
                    "a plain prompt must be a whole-solution review prompt; use chat messages for the per-step format"
                )
            end = text.find(WHOLE_SOLUTION_PROMPT_END)
            if end < 0:
                raise ValueError("the whole-solution prompt's last line is missing")
            head, written = text[:end], text[end + len(WHOLE_SOLUTION_PROMPT_END) :].lstrip("\n")
            problem, steps = parse_whole_solution_prompt(head)
            return _Whole(problem, parse_problem(problem), steps, written)
        assert request.messages is not None
        users = [m["content"] for m in request.messages if m["role"] == "user"]
        n_assistant = sum(1 for m in request.messages if m["role"] == "assistant")
        if not users:
            raise ValueError("the conversation has no user turn")
        if "<paragraph_1>" in users[0] and "[Math Problem]" in users[0]:
            if n_assistant:
                raise ValueError(
                    "the whole-solution review is one user prompt; pass the review so far as assistant_prefix"
                )
            problem, steps = parse_whole_solution_prompt(users[0])
            return _Whole(problem, parse_problem(problem), steps, request.assistant_prefix)
        t = n_assistant + 1
        if t > len(users):
            raise ValueError(f"turn {t} has no user turn (the conversation has {len(users)})")
        first = users[0]
        if first.startswith("Question: "):
            first = first[len("Question: ") :]
        problem, _, step_1 = first.partition("\n")
        steps = [step_1.strip("\n"), *users[1:t]]
        return _PerStep(problem.strip(), parse_problem(problem), steps, request.assistant_prefix)
