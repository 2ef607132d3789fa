"""Batched rationale synthesis: every solution's review advances together, code is executed.

:func:`synthesize` reviews many solutions with one teacher :class:`~genprm.engine.base.Generator`.
Each round it sends ONE ``generate`` call holding the next stage request of every unfinished
solution (up to ``max_active`` solutions are in flight; finished ones are replaced from the
queue), executes the code blocks the round returned in each solution's own sandbox session (a
thread pool runs the code of different solutions concurrently while the requests of the other
solutions are built), appends the ``[Code Output]`` block and goes on::

    with Sandbox(SandboxConfig(timeout_s=5)) as sandbox:
        reviews = synthesize(teacher, sandbox.session, items, SynthesisLimits(fmt="per_step"))

``items`` are ``(solution_id, problem, steps)`` triples. ``open_session`` is called once per
solution, at its first code block; the session (anything with ``run(code, timeout)`` and
``close()``) keeps the namespace across that solution's steps and is closed when it finishes.

Formats (the stage logic of :mod:`genprm.rationale.review`, batched):

``per_step`` (GenPRM conversation, one assistant turn per step)
    ``analyze_prefix(t)`` (sent without its trailing space, :func:`~genprm.conversation.prompt_prefix`)
    -> until ``</analyze>\\n``; ``VERIFY_PREFIX`` -> until a code block
    closes (executed, ``[Code Output]`` appended, continue) or ``</output>\\n``. The turn falls
    back to the analysis followed by ``FALLBACK_JUDGEMENT`` when a stage ends without its stop
    string, when a block is opened after ``max_code_rounds`` executed blocks, when the step's
    token budget (``max_tokens_per_step``, counted over all of its generations) is spent, or when
    the step has run longer than ``step_timeout_s`` seconds of wall time. With
    ``fallback_judgement="generate"`` only the judgement is generated (``fallback_tokens``); with
    ``"logits"`` an analysis cut by the budget is closed with ``</analyze>`` and the judgement is
    the likelier of ``Yes``/``No`` by the teacher's log-probabilities after the forced prefix
    (:func:`genprm.verifier.forced_reward`); the turn is marked ``forced``.
``whole_solution`` (the paper's prompt, :func:`~genprm.rationale.prompts.whole_solution_prompt`)
    generate until each code block closes, execute it, continue until the teacher ends; at most
    ``max_code_rounds * n_steps`` blocks, ``max_tokens_per_step * n_steps`` tokens and
    ``step_timeout_s * n_steps`` seconds per review; when a budget runs out the review simply
    ends (parsing then decides whether it is usable).

Every piece of a review is kept as a :class:`Segment` (``prefix``: text we forced; ``gen``: text
the teacher wrote; ``exec``: an executed ``[Code Output]`` block) so the SFT builder can mark the
spans exactly. Results are deterministic for a deterministic teacher: the order of requests and
of the returned reviews follows ``items``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
    judgement,
    prompt_prefix,
)
from genprm.conversation import code_output_block as text_output_block
from genprm.engine.base import Completion, GenerationRequest, Generator
from genprm.logs import progress
from genprm.rationale.prompts import whole_solution_prompt
from genprm.rationale.review import last_code_block
from genprm.sandbox.output import NO_CODE_OUTPUT, ExecResult, code_output_block
from genprm.verifier import forced_reward

__all__ = [
    "Format",
    "SegmentKind",
    "Segment",
    "StepTurn",
    "Review",
    "SynthesisLimits",
    "SessionLike",
    "synthesize",
    "segments_text",
]

log = logging.getLogger(__name__)

Format = Literal["per_step", "whole_solution"]
SegmentKind = Literal["prefix", "gen", "exec"]


class SessionLike(Protocol):
    """What the scheduler needs of a sandbox session."""

    def run(self, code: str, timeout: float | None = None) -> ExecResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Segment:
    """A piece of a review: forced ``prefix`` text, teacher-written ``gen`` text or an ``exec`` output block."""

    kind: SegmentKind
    text: str


def segments_text(segments: Sequence[Segment]) -> str:
    return "".join(s.text for s in segments)


@dataclass
class StepTurn:
    """One assistant turn of the per-step format (``step`` is 0-based)."""

    step: int
    segments: list[Segment] = field(default_factory=list)
    code_rounds: int = 0
    fallback: bool = False
    fallback_reason: str | None = None
    forced: bool = False
    """The judgement was read from the teacher's log-probabilities (``fallback_judgement="logits"``)."""
    tokens: int = 0
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return segments_text(self.segments)


@dataclass
class Review:
    """A teacher's review of one solution, as written (not yet parsed)."""

    solution_id: str
    format: Format
    n_steps: int
    turns: list[StepTurn] = field(default_factory=list)
    """per_step: one turn per step; whole_solution: empty."""
    segments: list[Segment] = field(default_factory=list)
    """whole_solution: the review; per_step: empty."""
    code_rounds: int = 0
    budget_exhausted: bool = False
    tokens: int = 0
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """The review as one text (per_step: the turns joined by newlines)."""
        if self.format == "per_step":
            return "\n".join(t.text for t in self.turns)
        return segments_text(self.segments)


@dataclass(frozen=True)
class SynthesisLimits:
    """Budgets and sampling of the teacher (see the module docstring for how each applies)."""

    fmt: Format = "per_step"
    max_code_rounds: int = 3
    max_tokens_per_step: int = 2048
    fallback_tokens: int = 32
    fallback_judgement: Literal["generate", "logits"] = "generate"
    step_timeout_s: float = 120.0
    code_timeout_s: float | None = None
    """Per snippet; None: the sandbox's own default."""
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    style: Literal["code", "card"] = "code"
    max_active: int = 128
    """Solutions in flight at once (each holds a sandbox session once it has run code)."""
    exec_workers: int = 4

    def __post_init__(self) -> None:
        if self.fmt not in ("per_step", "whole_solution"):
            raise ValueError(f"unknown review format {self.fmt!r} (per_step | whole_solution)")
        if self.fallback_judgement not in ("generate", "logits"):
            raise ValueError(f"unknown fallback_judgement {self.fallback_judgement!r} (generate | logits)")
        if self.max_code_rounds < 0 or self.max_tokens_per_step < 1 or self.fallback_tokens < 1:
            raise ValueError("max_code_rounds >= 0, max_tokens_per_step >= 1 and fallback_tokens >= 1")
        if self.step_timeout_s <= 0 or self.max_active < 1 or self.exec_workers < 1:
            raise ValueError("step_timeout_s > 0, max_active >= 1 and exec_workers >= 1")


# ----------------------------------------------------------------------------------------------
# One solution's review as a state machine: `request()` gives the next generation request (or
# None when done), `advance(completion)` consumes it and returns code to execute (or None),
# `add_output(block)` appends an executed block.


class _Job:
    def __init__(self, index: int, solution_id: str, problem: str, steps: Sequence[str], limits: SynthesisLimits,
                 count: Callable[[Completion], int], generator: Generator | None = None) -> None:
        if not steps:
            raise ValueError(f"solution {solution_id!r} has no steps")
        self.index, self.limits, self.count, self.generator = index, limits, count, generator
        self.problem, self.steps = problem, list(steps)
        self.review = Review(solution_id, limits.fmt, len(steps))
        self.session: SessionLike | None = None
        self.started = time.monotonic()
        self.done = False
        if limits.fmt == "per_step":
            self.stage = ""  # analyze | verify | fallback
            self._begin_step(0)
        else:
            self.messages = [{"role": "user", "content": whole_solution_prompt(problem, self.steps)}]

    # -- shared ------------------------------------------------------------------------------

    def _sample(self, messages: Sequence[dict[str, str]], prefix: str, stop: tuple[str, ...], max_tokens: int):
        lim = self.limits
        return GenerationRequest(
            messages=messages, assistant_prefix=prefix, temperature=lim.temperature, top_p=lim.top_p,
            top_k=lim.top_k, seed=lim.seed, max_tokens=max(1, max_tokens), stop=stop, include_stop=True,
        )

    def request(self) -> GenerationRequest | None:
        if self.done:
            return None
        return self._per_step_request() if self.limits.fmt == "per_step" else self._whole_request()

    def advance(self, completion: Completion) -> str | None:
        tokens = self.count(completion)
        self.review.tokens += tokens
        if self.limits.fmt == "per_step":
            return self._per_step_advance(completion, tokens)
        return self._whole_advance(completion, tokens)

    def add_output(self, block: str) -> None:
        if self.limits.fmt == "per_step":
            self.turn.segments.append(Segment("exec", block))
            self.turn.code_rounds += 1
        else:
            self.review.segments.append(Segment("exec", block))
        self.review.code_rounds += 1

    def finish(self) -> None:
        self.done = True
        self.review.seconds = round(time.monotonic() - self.started, 4)

    # -- per step ----------------------------------------------------------------------------

    def _begin_step(self, t: int) -> None:
        self.turn = StepTurn(step=t, segments=[Segment("prefix", analyze_prefix(t + 1))])
        self.stage, self.step_tokens, self.step_started = "analyze", 0, time.monotonic()
        self.analysis_end = 1  # segments[:analysis_end] are the analysis

    def _messages(self) -> list[dict[str, str]]:
        """The conversation up to the current step's user turn (earlier turns as written)."""
        return build_messages(self.problem, self.steps[: self.turn.step + 1], [x.text for x in self.review.turns],
                              style=self.limits.style)

    def _per_step_request(self) -> GenerationRequest:
        messages = self._messages()
        left = self.limits.max_tokens_per_step - self.step_tokens
        if self.stage == "analyze":  # the prefix without its trailing space (conversation.prompt_prefix)
            return self._sample(messages, prompt_prefix(self.turn.text), (ANALYZE_STOP,), left)
        if self.stage == "verify":
            return self._sample(messages, self.turn.text, (CODE_STOP, OUTPUT_STOP), left)
        return self._sample(messages, self.turn.text, (OUTPUT_STOP,), self.limits.fallback_tokens)

    def _fall_back(self, reason: str) -> None:
        turn = self.turn
        turn.fallback, turn.fallback_reason = True, reason
        turn.segments = turn.segments[: self.analysis_end]
        if not turn.text.endswith("\n"):
            turn.segments.append(Segment("prefix", "\n"))
        force = self.limits.fallback_judgement == "logits"
        if force and not turn.text.endswith(ANALYZE_STOP):
            turn.segments.append(Segment("prefix", ANALYZE_STOP))
        turn.segments.append(Segment("prefix", FALLBACK_JUDGEMENT))
        self.stage = "fallback"
        self.review.budget_exhausted = True
        log.debug("%s step %d: fallback (%s)", self.review.solution_id, turn.step + 1, reason)
        if force:
            self._force_judgement()

    def _force_judgement(self) -> None:
        """The judgement the teacher finds likelier after the forced prefix, read from its logits."""
        if self.generator is None:
            raise RuntimeError("fallback_judgement='logits' needs the teacher generator")
        p_yes = forced_reward(self.generator, self._sample(self._messages(), self.turn.text, (), 1))
        self.turn.segments.append(Segment("gen", judgement(p_yes >= 0.5)[len(FALLBACK_JUDGEMENT):]))
        self.turn.forced = True
        self._end_step()

    def _end_step(self) -> None:
        self.turn.tokens = self.step_tokens
        self.turn.seconds = round(time.monotonic() - self.step_started, 4)
        self.review.turns.append(self.turn)
        if len(self.review.turns) == len(self.steps):
            self.finish()
        else:
            self._begin_step(len(self.review.turns))

    def _over_budget(self) -> str | None:
        if self.step_tokens >= self.limits.max_tokens_per_step:
            return "tokens"
        if time.monotonic() - self.step_started > self.limits.step_timeout_s:
            return "time"
        return None

    def _per_step_advance(self, c: Completion, tokens: int) -> str | None:
        text = c.text
        if self.stage == "analyze":  # generated after prompt_prefix: drop the space the prefix segment holds
            text = join_generated(self.turn.text, c.text)[len(self.turn.text):]
        self.turn.segments.append(Segment("gen", text))
        if self.stage == "fallback":
            self._end_step()
            return None
        self.step_tokens += tokens
        if self.stage == "analyze":
            if c.stop_string != ANALYZE_STOP:
                self.analysis_end = len(self.turn.segments)
                self._fall_back("analyze_unfinished")
                return None
            self.analysis_end = len(self.turn.segments)
            budget = self._over_budget()
            if budget:
                self._fall_back(budget)
                return None
            self.turn.segments.append(Segment("prefix", VERIFY_PREFIX))
            self.stage = "verify"
            return None
        # verify stage
        if c.stop_string == OUTPUT_STOP:
            self._end_step()
            return None
        if c.stop_string != CODE_STOP:
            self._fall_back("verify_unfinished")
            return None
        if self.turn.code_rounds >= self.limits.max_code_rounds:
            self._fall_back("code_rounds")
            return None
        return self.turn.text

    def after_output(self) -> None:
        """Called after an executed block was appended (per-step): check the step's budgets."""
        if self.limits.fmt == "per_step":
            budget = self._over_budget()
            if budget:
                self._fall_back(budget)

    # -- whole solution ----------------------------------------------------------------------

    def _whole_request(self) -> GenerationRequest:
        left = self.limits.max_tokens_per_step * len(self.steps) - self.review.tokens
        return self._sample(self.messages, self.review.text, (CODE_STOP,), left)

    def _whole_advance(self, c: Completion, tokens: int) -> str | None:
        self.review.segments.append(Segment("gen", c.text))
        n = len(self.steps)
        if c.stop_string != CODE_STOP:
            self.review.budget_exhausted = c.finish_reason == "length"
            self.finish()
            return None
        over_tokens = self.review.tokens >= self.limits.max_tokens_per_step * n
        over_time = time.monotonic() - self.started > self.limits.step_timeout_s * n
        if self.review.code_rounds >= self.limits.max_code_rounds * n or over_tokens or over_time:
            log.debug("%s: whole-solution review stopped by its budget", self.review.solution_id)
            self.review.budget_exhausted = True
            self.finish()
            return None
        return self.review.text


def _block_for(session: SessionLike, text: str, timeout: float | None) -> str:
    """The ``[Code Output]`` block of the code block ``text`` ends with."""
    code = last_code_block(text)
    if code is None or not code.strip():
        return text_output_block(NO_CODE_OUTPUT)
    return code_output_block(session.run(code, timeout))


def _count_with(generator: Generator) -> Callable[[Completion], int]:
    def count(c: Completion) -> int:
        if c.token_ids:
            return len(c.token_ids)
        return generator.count_tokens(c.text) if c.text else 0

    return count


def synthesize(
    generator: Generator,
    open_session: Callable[[], SessionLike],
    items: Sequence[tuple[str, str, Sequence[str]]],
    limits: SynthesisLimits | None = None,
    *,
    stats: dict[str, Any] | None = None,
) -> list[Review]:
    """Review every ``(solution_id, problem, steps)`` of ``items``; one :class:`Review` each, in order.

    ``stats`` (optional dict) receives ``rounds``, ``requests``, ``generate_seconds``,
    ``exec_seconds`` and ``code_blocks``.
    """
    limits = limits or SynthesisLimits()
    count = _count_with(generator)
    queue = list(enumerate(items))
    queue.reverse()  # pop() from the end takes items in order
    active: list[_Job] = []
    reviews: list[Review | None] = [None] * len(items)
    st = {"rounds": 0, "requests": 0, "generate_seconds": 0.0, "exec_seconds": 0.0, "code_blocks": 0}
    bar = progress(range(len(items)), desc=f"rationales ({limits.fmt})", total=len(items), unit="sol")

    def refill() -> None:
        while queue and len(active) < limits.max_active:
            i, (sid, problem, steps) = queue.pop()
            active.append(_Job(i, sid, problem, steps, limits, count, generator))

    def retire() -> None:
        for job in [j for j in active if j.done]:
            if job.session is not None:
                job.session.close()
                job.session = None
            reviews[job.index] = job.review
            active.remove(job)
            next(bar, None)

    pool = ThreadPoolExecutor(max_workers=limits.exec_workers, thread_name_prefix="rationale-exec")
    try:
        refill()
        requests = [job.request() for job in active]
        while active:
            st["rounds"] += 1
            st["requests"] += len(requests)
            t0 = time.perf_counter()
            outs = generator.generate(requests)
            st["generate_seconds"] += time.perf_counter() - t0
            if len(outs) != len(requests):
                raise RuntimeError(f"the teacher answered {len(outs)} of {len(requests)} requests")
            t0 = time.perf_counter()
            running: list[tuple[_Job, Future[str]]] = []
            for job, out in zip(active, outs):
                code_text = job.advance(out[0])
                if code_text is not None:
                    if job.session is None:
                        job.session = open_session()
                    running.append((job, pool.submit(_block_for, job.session, code_text, limits.code_timeout_s)))
            # while the code runs, retire finished reviews and build the other solutions' requests
            waiting = {job.index for job, _ in running}
            retire()
            refill()
            prepared = {j.index: j.request() for j in active if j.index not in waiting}
            for job, fut in running:
                job.add_output(fut.result())
                job.after_output()  # may end the review (a judgement forced from the logits)
                st["code_blocks"] += 1
            retire()
            refill()
            st["exec_seconds"] += time.perf_counter() - t0
            requests = [prepared.get(j.index) or j.request() for j in active]  # type: ignore[misc]
    finally:
        pool.shutdown(wait=True)
        for job in active:
            if job.session is not None:
                job.session.close()
        for _ in bar:  # drain the bar
            pass
    if stats is not None:
        stats.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in st.items()})
    return [r for r in reviews if r is not None]
