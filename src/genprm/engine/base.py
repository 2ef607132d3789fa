"""Request and result types shared by every generation backend, and the ``Generator`` protocol.

Every stage that writes text (policy rollouts, Monte-Carlo completions, teacher rationales,
GenPRM verification, critic refinement) builds :class:`GenerationRequest` objects and hands a
list of them to a :class:`Generator` made by :func:`genprm.engine.create_generator`::

    gen = create_generator("vllm", model="path/to/model")
    req = GenerationRequest(messages=[{"role": "user", "content": "Compute 3 + 4."}],
                            assistant_prefix="Step 1:", temperature=0.0, max_tokens=64,
                            stop=("\\n",), include_stop=True, logprobs=5)
    [[completion]] = gen.generate([req])

Prompt rendering (the same in every backend that has the model's tokenizer):

* ``prompt``: the text ``prompt + assistant_prefix`` is tokenized *with* the tokenizer's special
  tokens (e.g. BOS), as vLLM does for plain text prompts.
* ``messages``: the chat template is rendered with ``add_generation_prompt=True``, then
  ``assistant_prefix`` is appended verbatim (the assistant turn is pre-filled: step forcing),
  and the whole text is tokenized *without* adding special tokens (the template carries them).

``Completion.text`` is the generated text only (it does not repeat ``assistant_prefix``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = ["GenerationRequest", "Completion", "Generator", "FinishReason", "EngineError"]

FinishReason = Literal["stop", "length", "eos"]


class EngineError(RuntimeError):
    """A backend failed to answer: server down, malformed answer, engine error."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt (plain text or chat messages) and how to sample from it.

    ``temperature == 0`` means greedy decoding (``n`` identical completions, decoded once). ``top_k`` of ``None`` (or 0) disables top-k.
    ``stop`` strings end a completion; ``include_stop`` keeps the stop string that fired at the
    end of ``Completion.text``. ``logprobs=k`` asks for the top-k log-probabilities of every
    generated token (plus the sampled token's own); ``None`` asks for none.
    """

    prompt: str | None = None
    messages: Sequence[dict[str, str]] | None = None
    assistant_prefix: str = ""
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    include_stop: bool = False
    logprobs: int | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerationRequest needs exactly one of `prompt` or `messages`")
        if self.messages is not None:
            if not self.messages:
                raise ValueError("GenerationRequest.messages is empty")
            for i, m in enumerate(self.messages):
                if not isinstance(m, dict) or "role" not in m or "content" not in m:
                    raise ValueError(f"GenerationRequest.messages[{i}] needs 'role' and 'content': {m!r}")
            if self.messages[-1]["role"] == "assistant":
                raise ValueError(
                    "the last message is an assistant turn: pass the partial assistant text as "
                    "`assistant_prefix` instead"
                )
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if any(not s for s in self.stop):
            raise ValueError("GenerationRequest.stop contains an empty string")
        if self.n < 1:
            raise ValueError(f"GenerationRequest.n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"GenerationRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationRequest.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"GenerationRequest.top_k must be >= 0 or None, got {self.top_k}")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"GenerationRequest.logprobs must be >= 0 or None, got {self.logprobs}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def effective_top_k(self) -> int | None:
        """``top_k`` with 0 normalised to ``None`` (disabled)."""
        return self.top_k or None


@dataclass
class Completion:
    """One generated continuation.

    ``finish_reason`` is ``"stop"`` (``stop_string`` says which one fired), ``"length"``
    (``max_tokens`` or the context was reached) or ``"eos"`` (the model ended its turn).
    ``token_ids`` are all generated tokens, the EOS token and the whole token that completed a
    stop string included (empty where the backend cannot know them). ``token_logprobs[i]`` is the
    log-probability of ``token_ids[i]``; ``logprobs[i]`` maps token id (or token string for
    servers that do not report ids) to log-probability for the top-k alternatives at step ``i``
    plus the sampled token. Both are ``None`` unless the request asked for ``logprobs``.
    Log-probabilities are those of the raw model distribution (before temperature/top-p).
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    stop_string: str | None = None
    token_logprobs: list[float] | None = None
    logprobs: list[dict[int | str, float]] | None = field(default=None, repr=False)

    @property
    def cumulative_logprob(self) -> float | None:
        return None if self.token_logprobs is None else float(sum(self.token_logprobs))

    def copy(self) -> Completion:
        """A deep copy (greedy requests with ``n > 1`` are decoded once and copied)."""
        return Completion(
            self.text,
            list(self.token_ids),
            self.finish_reason,
            self.stop_string,
            None if self.token_logprobs is None else list(self.token_logprobs),
            None if self.logprobs is None else [dict(d) for d in self.logprobs],
        )


@runtime_checkable
class Generator(Protocol):
    """What every backend offers. Engines stay alive across calls: create one, reuse it."""

    backend: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """One list of ``request.n`` completions per request, in request order."""
        ...

    def score_continuations(self, prompt: str | GenerationRequest, candidates: Sequence[str]) -> list[float]:
        """Sum of token log-probabilities of each candidate continuation after ``prompt``.

        ``prompt`` is a plain prompt string or a request (rendered as for generation, its
        ``assistant_prefix`` included). Each candidate is tokenized on its own (no special
        tokens) and appended to the prompt's tokens.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` (no special tokens added)."""
        ...

    def close(self) -> None:
        """Release the engine (GPU memory, connections)."""
        ...
