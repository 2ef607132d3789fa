"""The GenPRM verifier: per-step rewards and rationales, batched across solutions and paths.

It follows the staged GenPRM protocol of :mod:`genprm.conversation` exactly (the same prompts
and prefixes as the released inference code, so a published checkpoint works unchanged), one
assistant turn per step:

1. ``analyze_prefix(t)`` -> generate until ``</analyze>\\n`` (the prompt ends before the
   prefix's trailing space, which the model generates with the first word: see
   :func:`genprm.conversation.prompt_prefix`; the turn text is the protocol's);
2. ``VERIFY_PREFIX`` -> generate until a code block closes (the code runs in the solution's
   sandbox session and ``[Code Output]`` is appended; at most ``max_code_rounds`` blocks) or the
   judgement closes (``</output>\\n``);
3. when a stage ends without its stop string, the token budget of the turn runs out, one block
   too many is opened, or the turn closes without a parseable ``\\boxed{Yes}``/``\\boxed{No}``:
   the judgement is *forced*. The turn becomes the analysis alone followed by
   ``FALLBACK_JUDGEMENT`` and the reward is read from the model at that position (below).

Batching: steps are sequential within a verification path, but each stage of step ``t`` is ONE
engine call over every (solution, path) pair still active; code of different pairs runs
concurrently (one sandbox session per pair, so names persist across the steps of a path).

Reward of a path at a step: the judgement call asks for ``logprobs=20``; at the position of the
``Yes``/``No`` token that follows ``\\boxed{`` the two log-probabilities are soft-maxed (a missing
one takes the smallest returned log-probability). Without log-probabilities (e.g. the
``world-teacher`` backend) the parsed judgement gives 1.0 / 0.0. A forced judgement's reward is
P(Yes) / (P(Yes) + P(No)) of the continuations ``{Yes`` and ``{No`` after the forced prefix,
scored by :meth:`Generator.score_continuations` (the model's logits on every backend, never
sampled text; one batched ``score_many`` call per step where the engine has it); its turn then
ends with the likelier judgement. So the verifier never fails open: every reward is one the
model gave, and :attr:`PathTurn.forced` / :func:`forced_summary` say how many were forced.
Maj@N: the step reward is the mean over N paths. Requests carry seeds derived from (seed,
solution index, path, step, stage, round), so results do not depend on batch composition::

    verifier = GenPRMVerifier(generator, sandbox, VerifierOptions(n_paths=8, seed=0))
    results = verifier.verify([(problem, steps), ...])   # list[SolutionVerification]
    results[0].rewards                                    # one float per step
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
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
    code_output_block,
    join_generated,
    judgement,
    parse_judgement,
    prompt_prefix,
)
from genprm.engine.base import Completion, EngineError, GenerationRequest, Generator
from genprm.logs import progress
from genprm.records import Verdict
from genprm.sandbox.output import NO_CODE_OUTPUT
from genprm.sandbox.output import code_output_block as exec_output_block

__all__ = [
    "VerifierOptions",
    "PathTurn",
    "StepResult",
    "SolutionVerification",
    "GenPRMVerifier",
    "judgement_reward",
    "forced_reward",
    "forced_rewards",
    "forced_summary",
    "derive_seed",
    "token_decoder",
]

log = logging.getLogger(__name__)

_CODE_OPEN = "```python\n"


class _Runner(Protocol):
    def run(self, code: str, timeout: float | None = None) -> Any: ...


class _SandboxLike(Protocol):
    def session(self) -> Any: ...


@dataclass(frozen=True)
class VerifierOptions:
    """How the verifier samples. Defaults are the paper's (T 0.6, top-p 0.95, top-k 20)."""

    n_paths: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int | None = 20
    seed: int = 0
    max_tokens: int = 2048
    """Generated-token budget of one step turn (all its stages together)."""
    max_code_rounds: int = 3
    code_timeout_s: float = 5.0
    logprobs: int = 20
    style: Literal["code", "card"] = "code"
    max_active: int = 512
    """Most (solution, path) pairs in flight at once (each holds a sandbox session)."""
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.n_paths < 1:
            raise ValueError(f"n_paths must be >= 1, got {self.n_paths}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.max_code_rounds < 0:
            raise ValueError(f"max_code_rounds must be >= 0, got {self.max_code_rounds}")
        if self.max_active < 1:
            raise ValueError(f"max_active must be >= 1, got {self.max_active}")


FallbackReason = Literal["analysis_unfinished", "verify_unfinished", "token_budget", "code_rounds", "no_judgement"]


@dataclass
class PathTurn:
    """One verification path's assistant turn for one step.

    ``forced`` is True when the judgement was forced (the released code's "fallback", see the
    module docstring) and ``reason`` says why.
    """

    text: str
    reward: float
    verdict: bool
    code_rounds: int
    forced: bool
    reason: FallbackReason | None = None


@dataclass
class StepResult:
    """One step: the mean reward over paths and every path's turn."""

    step: int
    reward: float
    paths: list[PathTurn]

    @property
    def forced_share(self) -> float:
        """Share of this step's paths whose judgement was forced."""
        return sum(p.forced for p in self.paths) / len(self.paths)


@dataclass
class SolutionVerification:
    steps: list[StepResult]

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.steps]

    @property
    def forced_shares(self) -> list[float]:
        """Per step, the share of paths whose judgement was forced."""
        return [s.forced_share for s in self.steps]

    def verdicts(self, threshold: float = 0.5) -> list[Verdict]:
        """Records of path 0's rationale with the averaged reward (correct: reward >= threshold)."""
        return [
            Verdict(step=s.step, correct=s.reward >= threshold, reward=min(1.0, max(0.0, s.reward)),
                    forced=round(s.forced_share, 6), text=s.paths[0].text)
            for s in self.steps
        ]

    def first_error(self, threshold: float = 0.5) -> int:
        return next((s.step for s in self.steps if s.reward < threshold), -1)


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from ``parts`` (independent of batch composition and Python's hash)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def token_decoder(generator: Generator) -> Callable[[int | str], str] | None:
    """A function mapping a token id (or a server's token string) to its text, if the engine has a tokenizer."""
    tok = getattr(generator, "tokenizer", None)
    if tok is None:
        return lambda t: t if isinstance(t, str) else ""

    def decode(t: int | str) -> str:
        return t if isinstance(t, str) else tok.decode([int(t)])

    return decode


def _label(token_text: str) -> str | None:
    s = token_text.strip().lstrip("{").strip()
    return s if s in ("Yes", "No") else None


def judgement_reward(prefix: str, completion: Completion, decode: Callable[[int | str], str] | None) -> float | None:
    """P(Yes) of the judgement a completion ends with, or None when it has none (see the module docstring)."""
    verdict = parse_judgement(prefix + completion.text)
    if verdict is None:
        return None
    if completion.logprobs is None or decode is None or not completion.logprobs:
        return 1.0 if verdict else 0.0
    lps = completion.logprobs
    # the judgement is the last Yes/No token generated (the completion ends at </output>)
    for i in range(len(lps) - 1, -1, -1):
        if i < len(completion.token_ids):
            sampled = decode(completion.token_ids[i])
        else:  # servers without token ids: the sampled token is the entry with its log-probability
            target = completion.token_logprobs[i] if completion.token_logprobs else None
            sampled = next((str(k) for k, v in lps[i].items() if v == target), "")
        if _label(sampled) is None:
            continue
        by_label: dict[str, float] = {}
        for key, lp in lps[i].items():
            lab = _label(decode(key))
            if lab is not None and lp > by_label.get(lab, -math.inf):
                by_label[lab] = lp
        floor = min(lps[i].values())
        yes, no = by_label.get("Yes", floor), by_label.get("No", floor)
        m = max(yes, no)
        return math.exp(yes - m) / (math.exp(yes - m) + math.exp(no - m))
    return 1.0 if verdict else 0.0


FORCED_CANDIDATES = ("{Yes", "{No")
"""What is scored after :data:`FALLBACK_JUDGEMENT` (which ends at ``\\boxed``)."""


def forced_reward(generator: Generator, request: GenerationRequest) -> float:
    """P(Yes) / (P(Yes) + P(No)) right after ``request``'s prefix (see :func:`forced_rewards`)."""
    return forced_rewards(generator, [request])[0]


def forced_rewards(generator: Generator, requests: Sequence[GenerationRequest]) -> list[float]:
    """P(Yes) / (P(Yes) + P(No)) right after each request's prefix, from the model's log-probabilities.

    Each ``assistant_prefix`` must end with :data:`FALLBACK_JUDGEMENT`. One ``score_many`` call
    where the engine has one (vllm, hf), else one :meth:`~Generator.score_continuations` call per
    request. Raises :class:`genprm.engine.EngineError` when the engine cannot score (a judgement
    is never guessed).
    """
    for r in requests:
        if not r.assistant_prefix.endswith(FALLBACK_JUDGEMENT):
            raise ValueError("a forced judgement's prefix must end with FALLBACK_JUDGEMENT")
    if not requests:
        return []
    many = getattr(generator, "score_many", None)
    try:
        if many is not None:
            scores = many(list(requests), list(FORCED_CANDIDATES))
        else:
            scores = [generator.score_continuations(r, list(FORCED_CANDIDATES)) for r in requests]
    except NotImplementedError as exc:
        raise EngineError(
            f"the {generator.backend!r} engine cannot score continuations, so a forced judgement has no "
            f"reward; give it a local tokenizer or use a backend that reports log-probabilities ({exc})"
        ) from exc
    return [_p_yes(yes, no) for yes, no in scores]


def _p_yes(yes: float, no: float) -> float:
    if not (math.isfinite(yes) and math.isfinite(no)):
        if yes == no:
            raise EngineError(f"the engine gave no probability to either judgement ({yes}, {no})")
        return 1.0 if yes > no else 0.0
    m = max(yes, no)
    return math.exp(yes - m) / (math.exp(yes - m) + math.exp(no - m))


def forced_summary(results: Sequence[SolutionVerification], paths: int | None = None) -> dict[str, Any]:
    """How many path turns had their judgement forced, overall and by reason (for metrics files).

    ``paths``: count only each step's first ``paths`` paths (1 for a Pass@1 metric).
    """
    turns = [p for r in results for s in r.steps for p in s.paths[:paths]]
    reasons: dict[str, int] = {}
    for p in turns:
        if p.forced:
            reasons[str(p.reason)] = reasons.get(str(p.reason), 0) + 1
    forced = sum(reasons.values())
    return {"turns": len(turns), "forced": forced, "share": round(forced / len(turns), 4) if turns else 0.0,
            "by_reason": dict(sorted(reasons.items()))}


def _last_code(text: str) -> str | None:
    if not text.endswith(CODE_STOP):
        return None
    start = text.rfind(_CODE_OPEN)
    return None if start < 0 else text[start + len(_CODE_OPEN) : len(text) - len(CODE_STOP)]


@dataclass
class _Path:
    """State of one (solution, path) pair."""

    sol: int
    path: int
    problem: str
    steps: list[str]
    turns: list[str] = field(default_factory=list)
    results: list[PathTurn] = field(default_factory=list)
    session: Any = None
    # per-turn state
    analysis: str = ""
    turn: str = ""
    used: int = 0
    rounds: int = 0
    fallback: bool = False
    reason: FallbackReason | None = None


class GenPRMVerifier:
    """Batched, staged GenPRM verification with Maj@N (see the module docstring)."""

    def __init__(
        self,
        generator: Generator,
        sandbox: _SandboxLike | None = None,
        options: VerifierOptions | None = None,
        *,
        code_workers: int = 16,
    ) -> None:
        self.generator = generator
        self.sandbox = sandbox
        self.options = options or VerifierOptions()
        self.code_workers = code_workers
        self.decode = token_decoder(generator)

    # ------------------------------------------------------------------ public
    def verify(self, solutions: Sequence[tuple[str, Sequence[str]]], *, show_progress: bool = True) -> list[SolutionVerification]:
        """Verify every ``(problem, steps)``; one :class:`SolutionVerification` per solution."""
        for i, (problem, steps) in enumerate(solutions):
            if not isinstance(problem, str) or not problem.strip():
                raise ValueError(f"solution {i}: the problem is empty")
            if not steps:
                raise ValueError(f"solution {i}: a solution needs at least one step")
        opts = self.options
        pairs = [(i, p) for i in range(len(solutions)) for p in range(opts.n_paths)]
        per_pair: dict[tuple[int, int], list[PathTurn]] = {}
        chunks = [pairs[k : k + opts.max_active] for k in range(0, len(pairs), opts.max_active)]
        for chunk in progress(chunks, desc="verify", unit="chunk") if show_progress and len(chunks) > 1 else chunks:
            states = [_Path(i, p, solutions[i][0], list(solutions[i][1])) for i, p in chunk]
            self._run(states)
            for s in states:
                per_pair[(s.sol, s.path)] = s.results
        out = []
        for i, (_, steps) in enumerate(solutions):
            step_results = []
            for t in range(len(steps)):
                turns = [per_pair[(i, p)][t] for p in range(opts.n_paths)]
                step_results.append(StepResult(t, sum(x.reward for x in turns) / len(turns), turns))
            out.append(SolutionVerification(step_results))
        return out

    def verify_serial(self, solutions: Sequence[tuple[str, Sequence[str]]]) -> list[SolutionVerification]:
        """The released code's loop: one solution, one path, one request at a time (a baseline)."""
        opts = self.options
        results = []
        for i, (problem, steps) in enumerate(solutions):
            paths = []
            for p in range(opts.n_paths):
                state = _Path(i, p, problem, list(steps))
                self._run([state])
                paths.append(state.results)
            results.append(
                SolutionVerification(
                    [
                        StepResult(t, sum(x[t].reward for x in paths) / len(paths), [x[t] for x in paths])
                        for t in range(len(steps))
                    ]
                )
            )
        return results

    def score(self, problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        """The :class:`genprm.prm.PRM` interface: per-step rewards."""
        return [v.rewards for v in self.verify(list(zip(problems, solutions)))]

    # ----------------------------------------------------------------- internals
    def _request(self, s: _Path, t: int, prefix: str, stop: tuple[str, ...], max_tokens: int, stage: str, rnd: int, logprobs: int | None) -> GenerationRequest:
        opts = self.options
        return GenerationRequest(
            messages=build_messages(s.problem, s.steps[:t], s.turns, style=opts.style),
            assistant_prefix=prefix,
            temperature=opts.temperature,
            top_p=opts.top_p,
            top_k=opts.top_k,
            seed=derive_seed(opts.seed, s.sol, s.path, t, stage, rnd),
            max_tokens=max_tokens,
            stop=stop,
            include_stop=True,
            logprobs=logprobs,
        )

    def _call(self, requests: list[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        return [outs[0] for outs in self.generator.generate(requests)]

    def _execute(self, batch: list[_Path], stack: ExitStack) -> list[str]:
        """``[Code Output]`` blocks for the code each pair's turn ends with (run concurrently)."""

        def one(s: _Path) -> str:
            code = _last_code(s.turn)
            if code is None or not code.strip():
                return code_output_block(NO_CODE_OUTPUT)
            if self.sandbox is None:
                raise RuntimeError("the verifier wrote code but has no sandbox: pass one to GenPRMVerifier")
            return exec_output_block(s.session.run(code, timeout=self.options.code_timeout_s))

        for s in batch:
            if s.session is None and self.sandbox is not None and _last_code(s.turn):
                s.session = stack.enter_context(self.sandbox.session())
        if len(batch) <= 1 or self.code_workers <= 1:
            return [one(s) for s in batch]
        with ThreadPoolExecutor(min(self.code_workers, len(batch))) as pool:
            return list(pool.map(one, batch))

    def _run(self, states: list[_Path]) -> None:
        opts = self.options
        n_steps = max(len(s.steps) for s in states)
        with ExitStack() as stack:
            for t in range(1, n_steps + 1):
                active = [s for s in states if len(s.steps) >= t]
                for s in active:
                    s.analysis, s.turn, s.used, s.rounds, s.fallback, s.reason = analyze_prefix(t), "", 0, 0, False, None
                # stage 1: analysis
                outs = self._call([self._request(s, t, prompt_prefix(s.analysis), (ANALYZE_STOP,), opts.max_tokens, "analyze", 0, None) for s in active])
                for s, c in zip(active, outs):
                    s.analysis = join_generated(s.analysis, c.text)
                    s.used += self._n_tokens(c)
                    if c.stop_string != ANALYZE_STOP:
                        s.fallback, s.reason = True, "analysis_unfinished"
                    elif s.used >= opts.max_tokens:
                        s.fallback, s.reason = True, "token_budget"
                    s.turn = s.analysis + VERIFY_PREFIX
                # stage 2: verify, executing code, until the judgement closes
                pending = [s for s in active if not s.fallback]
                rnd = 0
                while pending:
                    reqs = [
                        self._request(s, t, s.turn, (CODE_STOP, OUTPUT_STOP), opts.max_tokens - s.used, "verify", rnd, opts.logprobs)
                        for s in pending
                    ]
                    outs = self._call(reqs)
                    to_run: list[_Path] = []
                    for s, c in zip(pending, outs):
                        prefix = s.turn
                        s.turn += c.text
                        s.used += self._n_tokens(c)
                        if c.stop_string == OUTPUT_STOP:
                            reward = judgement_reward(prefix, c, self.decode)
                            if reward is None:
                                s.fallback, s.reason = True, "no_judgement"
                            else:
                                s.results.append(PathTurn(s.turn, reward, bool(parse_judgement(s.turn)), s.rounds, False))
                        elif c.stop_string == CODE_STOP and s.rounds < opts.max_code_rounds and s.used < opts.max_tokens:
                            to_run.append(s)
                        else:
                            s.fallback = True
                            s.reason = ("code_rounds" if c.stop_string == CODE_STOP and s.rounds >= opts.max_code_rounds
                                        else "token_budget" if s.used >= opts.max_tokens else "verify_unfinished")
                    for s, block in zip(to_run, self._execute(to_run, stack)):
                        s.turn += block
                        s.rounds += 1
                    pending = to_run
                    rnd += 1
                # stage 3: the analysis alone and a forced judgement, scored from the logits
                falling = [s for s in active if s.fallback]
                if falling:
                    log.debug("step %d: %d paths fall back to a forced judgement", t, len(falling))
                prefixes = [(s.analysis if s.analysis.endswith("\n") else s.analysis + "\n") + FALLBACK_JUDGEMENT
                            for s in falling]
                rewards = forced_rewards(self.generator, [self._request(s, t, pre, (), 1, "judge", 0, None)
                                                          for s, pre in zip(falling, prefixes)])
                for s, pre, reward in zip(falling, prefixes, rewards):
                    s.turn = pre + judgement(reward >= 0.5)[len(FALLBACK_JUDGEMENT):]
                    s.results.append(PathTurn(s.turn, reward, reward >= 0.5, s.rounds, True, s.reason))
                for s in active:
                    s.turns.append(s.turn)

    def _n_tokens(self, c: Completion) -> int:
        if c.token_ids:
            return len(c.token_ids)
        return self.generator.count_tokens(c.text)
