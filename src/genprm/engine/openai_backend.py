"""The ``openai`` backend: any OpenAI-compatible server (vLLM's api_server, a hosted API), over httpx.

Base URL and key come from the settings or from the environment (``OPENAI_BASE_URL`` and
``OPENAI_API_KEY`` by default, or the variables named by ``base_url_env``/``api_key_env``).
Requests run on a thread pool of ``max_concurrency``; each HTTP call is retried with exponential
backoff after connection errors, timeouts, 5xx and 429 (``max_retries`` times), then fails with
:class:`genprm.engine.EngineError` naming the URL and the last error. Malformed answers (not
JSON, missing fields) fail at once with the same error type.

How a request is sent:

* With a local ``tokenizer`` (the served model's): the prompt is rendered locally exactly as the
  other backends do (chat template with ``add_generation_prompt=True``, then the partial
  assistant text) and sent to ``/v1/completions`` as token ids. This is the chosen way to
  continue a partial assistant message, and the only way ``score_continuations`` works
  (``echo`` + ``logprobs`` over the prompt tokens).
* Without one: plain prompts go to ``/v1/completions`` as text; chat messages go to
  ``/v1/chat/completions`` and a partial assistant message needs ``vllm_extensions``
  (``continue_final_message``).

``vllm_extensions`` (default on) sends vLLM's extra fields: ``top_k``,
``include_stop_str_in_output``, ``return_token_ids`` and ``return_tokens_as_token_ids`` (so
logprobs are keyed by token id). Turn it off for hosted APIs; then ``top_k`` and
``include_stop`` raise, token ids are empty, logprobs are keyed by token string, and a
``"stop"`` finish without a reported stop string is read as ``"eos"`` when the request has no
stop strings (else ``"stop"`` with ``stop_string=None``)::

    gen = create_generator("openai", model="teacher", base_url="http://127.0.0.1:8000/v1",
                           tokenizer="path/to/teacher")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from genprm.engine.base import Completion, EngineError, FinishReason, GenerationRequest
from genprm.engine.prompts import candidate_sequences, fit_to_context, load_tokenizer, render_prompt_ids
from genprm.engine.settings import OpenAISettings

__all__ = ["OpenAIGenerator"]

log = logging.getLogger(__name__)

_TOKEN_ID_PREFIX = "token_id:"


def _key(token: str) -> int | str:
    return int(token[len(_TOKEN_ID_PREFIX) :]) if token.startswith(_TOKEN_ID_PREFIX) else token


class OpenAIGenerator:
    """A :class:`genprm.engine.Generator` over an OpenAI-compatible HTTP server."""

    backend = "openai"

    def __init__(self, settings: OpenAISettings) -> None:
        import httpx

        self.settings = settings
        base_url = settings.base_url or os.environ.get(settings.base_url_env)
        if not base_url:
            raise ValueError(f"openai backend: set `base_url` or the environment variable {settings.base_url_env}")
        self.base_url = base_url.rstrip("/")
        api_key = settings.api_key or os.environ.get(settings.api_key_env)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_concurrency),
        )
        self.tokenizer = load_tokenizer(settings.tokenizer) if settings.tokenizer else None
        self.max_model_len = settings.max_model_len

    # -- HTTP --------------------------------------------------------------------------------

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            try:
                resp = self.client.post(url, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                elif resp.status_code >= 400:
                    raise EngineError(f"{url} answered HTTP {resp.status_code}: {resp.text[:1000]}")
                else:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise EngineError(f"{url} answered malformed JSON: {resp.text[:300]!r}") from None
                    if not isinstance(data, dict):
                        raise EngineError(f"{url} answered JSON that is not an object: {resp.text[:300]!r}")
                    return data
            if attempt < s.max_retries:
                delay = min(s.backoff_s * 2**attempt, s.backoff_max_s)
                log.warning("%s: %s; retry %d/%d in %.1fs", url, last, attempt + 1, s.max_retries, delay)
                time.sleep(delay)
        raise EngineError(f"{url}: no valid answer after {s.max_retries + 1} attempts; last error: {last}")

    # -- request bodies ------------------------------------------------------------------------

    def _sampling_body(self, req: GenerationRequest, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "n": 1 if req.greedy else req.n,  # greedy: decode once, copy
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": max_tokens,
        }
        if req.stop:
            body["stop"] = list(req.stop)
        if req.seed is not None:
            body["seed"] = req.seed
        if self.settings.vllm_extensions:
            body["top_k"] = req.effective_top_k or 0
            body["include_stop_str_in_output"] = req.include_stop
            body["return_token_ids"] = True
            body["return_tokens_as_token_ids"] = True
        else:
            if req.effective_top_k is not None:
                raise ValueError("top_k needs vllm_extensions=True (not part of the OpenAI API)")
            if req.include_stop:
                raise ValueError("include_stop needs vllm_extensions=True (not part of the OpenAI API)")
        return body

    def _one(self, index: int, req: GenerationRequest, prompt_ids: list[int] | None, max_tokens: int) -> list[Completion]:
        body = self._sampling_body(req, max_tokens)
        try:
            if prompt_ids is not None or req.messages is None:
                body["prompt"] = prompt_ids if prompt_ids is not None else req.prompt + req.assistant_prefix
                if req.logprobs is not None:
                    body["logprobs"] = req.logprobs
                data = self._post(f"{self.base_url}/completions", body)
                chat = False
            else:
                messages = [dict(m) for m in req.messages]
                if req.assistant_prefix:
                    if not self.settings.vllm_extensions:
                        raise ValueError(
                            "continuing a partial assistant message without a local tokenizer needs "
                            "vllm_extensions=True (continue_final_message)"
                        )
                    messages.append({"role": "assistant", "content": req.assistant_prefix})
                    body["continue_final_message"] = True
                    body["add_generation_prompt"] = False
                body["messages"] = messages
                if req.logprobs is not None:
                    body["logprobs"] = True
                    body["top_logprobs"] = req.logprobs
                data = self._post(f"{self.base_url}/chat/completions", body)
                chat = True
            return self._parse(data, req, chat)
        except (EngineError, ValueError) as exc:
            raise type(exc)(f"request {index}: {exc}") from None

    # -- responses -----------------------------------------------------------------------------

    def _parse(self, data: dict[str, Any], req: GenerationRequest, chat: bool) -> list[Completion]:
        expected = 1 if req.greedy else req.n
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != expected:
            raise EngineError(f"malformed answer: expected {expected} choices, got {str(data)[:300]!r}")
        try:
            comps = [self._choice(c, req, chat) for c in sorted(choices, key=lambda c: c["index"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"malformed answer ({type(exc).__name__}: {exc}): {str(data)[:300]!r}") from None
        return comps + [comps[0].copy() for _ in range(req.n - expected)]

    def _choice(self, c: dict[str, Any], req: GenerationRequest, chat: bool) -> Completion:
        text = c["message"]["content"] if chat else c["text"]
        if not isinstance(text, str):
            raise TypeError("text is not a string")
        stop_reason = c.get("stop_reason")
        reason: FinishReason
        stop = None
        if c["finish_reason"] == "length":
            reason = "length"
        elif c["finish_reason"] == "stop":
            if isinstance(stop_reason, str):
                reason, stop = "stop", stop_reason
            elif self.settings.vllm_extensions or not req.stop:
                reason = "eos"
            else:
                reason = "stop"
        else:
            raise ValueError(f"unknown finish_reason {c['finish_reason']!r}")
        token_ids = [int(t) for t in c.get("token_ids") or []]
        token_lps = top = None
        if req.logprobs is not None:
            lp = c.get("logprobs")
            if not lp:
                raise ValueError("logprobs were requested but the answer has none")
            if chat:
                items = lp["content"] or []
                token_lps = [float(it["logprob"]) for it in items]
                keys = [_key(it["token"]) for it in items]
                top = [{_key(t["token"]): float(t["logprob"]) for t in it["top_logprobs"]} for it in items]
            else:
                token_lps = [float(x) for x in lp["token_logprobs"]]
                keys = [_key(t) for t in lp["tokens"]]
                top = [{_key(t): float(v) for t, v in (d or {}).items()} for d in lp["top_logprobs"]]
            for d, k, v in zip(top, keys, token_lps, strict=True):
                d.setdefault(k, v)
            if not token_ids and all(isinstance(k, int) for k in keys):
                token_ids = [int(k) for k in keys]  # type: ignore[arg-type]
        return Completion(text, token_ids, reason, stop, token_lps, top)

    # -- Generator API -------------------------------------------------------------------------

    def _prompt_ids(self, req: GenerationRequest) -> list[int] | None:
        return None if self.tokenizer is None else render_prompt_ids(self.tokenizer, req)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        ids = [self._prompt_ids(r) for r in requests]
        if self.max_model_len is not None and self.tokenizer is not None:
            budgets = fit_to_context([len(x or ()) for x in ids], requests, self.max_model_len)
        else:
            budgets = [r.max_tokens for r in requests]
        with ThreadPoolExecutor(self.settings.max_concurrency) as pool:
            futures = [pool.submit(self._one, i, r, x, b) for i, (r, x, b) in enumerate(zip(requests, ids, budgets))]
            return [f.result() for f in futures]

    def score_continuations(self, prompt: str | GenerationRequest, candidates: Sequence[str]) -> list[float]:
        if self.tokenizer is None:
            raise NotImplementedError(
                "openai backend: score_continuations needs a local `tokenizer` (token boundaries of the "
                "candidates must be known to read their echoed logprobs)"
            )
        base, full = candidate_sequences(self.tokenizer, prompt, candidates, self.max_model_len)

        def one(seq: list[int]) -> float:
            body = {"model": self.settings.model, "prompt": seq, "echo": True, "logprobs": 0,
                    "max_tokens": 1, "temperature": 0.0}
            data = self._post(f"{self.base_url}/completions", body)
            try:
                lps = data["choices"][0]["logprobs"]["token_logprobs"]
                return float(sum(lps[len(base) : len(seq)]))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise EngineError(f"malformed echo answer ({exc}): {str(data)[:300]!r}") from None

        with ThreadPoolExecutor(self.settings.max_concurrency) as pool:
            return list(pool.map(one, full))

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not self.settings.vllm_extensions:
            raise NotImplementedError("openai backend: count_tokens needs a local `tokenizer` or vllm_extensions")
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        data = self._post(f"{root}/tokenize", {"model": self.settings.model, "prompt": text, "add_special_tokens": False})
        if not isinstance(data.get("count"), int):
            raise EngineError(f"malformed /tokenize answer: {str(data)[:300]!r}")
        return data["count"]

    def close(self) -> None:
        self.client.close()
