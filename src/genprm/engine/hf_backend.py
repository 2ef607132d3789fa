"""The ``hf`` backend: transformers ``generate``, batched with left padding.

Requests are expanded into rows (one per sample; greedy requests need one row whatever ``n``),
grouped by sampling settings (temperature, top_p, top_k: transformers takes one set per call),
sorted by prompt length and cut into batches of ``batch_size`` rows, each one ``generate``
call. Per-row ``max_tokens`` and stop strings are enforced by a stopping criterion that decodes
the generated text, so a row ends at the token that completes a stop string, as in vLLM.
Log-probabilities come from the raw logits (``output_logits``), like vLLM's default. Rows that
share a prompt (a request's ``n`` samples) share its prefill: the prompt runs through the model
once and its KV cache is copied to each row. On CPU the model uses eager attention.

Sampling is seeded per call (the first seed among the rows of a batch, else the backend's
``seed``): the same call gives the same samples, but samples differ from vLLM's. Rows are
sampled by :class:`_RowSampler` (temperature, top-k, top-p, then one uniform draw per row
against the cumulative distribution) inside a greedy ``generate``: transformers' own sampling
(``torch.multinomial``) draws one exponential per vocabulary entry, single-threaded, which cost
a fifth of a batched call on CPU (60 ms per step at 64 rows x 49k tokens)::

    gen = create_generator("hf", model="path/to/model", dtype="float32")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genprm.engine.base import Completion, FinishReason, GenerationRequest
from genprm.engine.prompts import candidate_sequences, cut_at_stop, fit_to_context, load_tokenizer, render_prompt_ids
from genprm.engine.settings import HfSettings

__all__ = ["HfGenerator"]

log = logging.getLogger(__name__)


@dataclass
class _Row:
    req: int  # request index
    prompt: list[int]
    budget: int  # max new tokens
    stops: tuple[str, ...]
    seed: int | None


class _RowStopper:
    """transformers stopping criterion: per-row token budget and stop strings."""

    def __init__(self, rows: Sequence[_Row], width: int, tokenizer: Any) -> None:
        import torch

        self.rows, self.width, self.tokenizer = rows, width, tokenizer
        self.done = torch.zeros(len(rows), dtype=torch.bool)
        self.stopped_at: list[int | None] = [None] * len(rows)  # generated length when a stop fired

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        gen_len = input_ids.shape[1] - self.width
        check = []
        for i, row in enumerate(self.rows):
            if self.done[i]:
                continue
            if row.stops:
                check.append(i)
            elif gen_len >= row.budget:
                self.done[i] = True
        if check:
            texts = self.tokenizer.batch_decode(input_ids[check, self.width :].tolist(), skip_special_tokens=True)
            for i, text in zip(check, texts, strict=True):
                if any(s in text for s in self.rows[i].stops):
                    self.done[i] = True
                    self.stopped_at[i] = gen_len
                elif gen_len >= self.rows[i].budget:
                    self.done[i] = True
        return self.done.to(input_ids.device).clone()


class _RowSampler:
    """transformers logits processor that samples each row's next token and returns it as a one-hot score.

    Used with a greedy ``generate`` (its arg-max then picks the sampled token). The distribution
    is vLLM's: logits / temperature, the ``top_k`` largest kept (0: all), then the smallest set of
    most likely tokens whose probability reaches ``top_p``.
    """

    def __init__(self, temperature: float, top_p: float, top_k: int, generator: Any) -> None:
        self.temperature, self.top_p, self.top_k, self.generator = temperature, top_p, top_k, generator

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the more likely tokens
            sorted_p = sorted_p.masked_fill(before >= self.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        cdf = probs.cumsum(dim=-1)
        u = torch.rand((cdf.shape[0], 1), generator=self.generator, device=cdf.device) * cdf[:, -1:]
        chosen = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
        return torch.full_like(scores, float("-inf")).scatter_(-1, chosen, 0.0)


class HfGenerator:
    """A :class:`genprm.engine.Generator` over transformers ``generate``."""

    backend = "hf"

    def __init__(self, settings: HfSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.settings = settings
        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
        self.tokenizer = load_tokenizer(settings.tokenizer or settings.model, settings.trust_remote_code)
        log.info("loading %s for transformers on %s", settings.model, device)
        # On CPU, eager attention decodes a padded batch faster than torch's SDPA CPU kernel (one
        # query token per row: 150 vs 205 ms per step at 64 rows, SmolLM2-135M in bfloat16).
        attention = {"attn_implementation": "eager"} if device == "cpu" else {}
        self.model = AutoModelForCausalLM.from_pretrained(
            settings.model, dtype=dtype, trust_remote_code=settings.trust_remote_code, **attention
        ).to(device)
        self.model.eval()
        self.device = torch.device(device)
        cfg = self.model.config
        self.max_model_len = settings.max_model_len or int(getattr(cfg, "max_position_embeddings", 2048))
        eos: list[int] = []
        for src in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            for t in src if isinstance(src, list) else [src]:
                if t is not None and t not in eos:
                    eos.append(int(t))
        if not eos:
            raise ValueError(f"{settings.model}: neither the generation config nor the tokenizer names an EOS token")
        self.eos_ids = eos
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]

    # -- generation ------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        ids = [render_prompt_ids(self.tokenizer, r) for r in requests]
        budgets = fit_to_context([len(x) for x in ids], requests, self.max_model_len)
        groups: dict[tuple, list[_Row]] = {}
        for i, (req, prompt, budget) in enumerate(zip(requests, ids, budgets, strict=True)):
            key = (req.greedy, req.temperature, req.top_p, req.effective_top_k)
            copies = 1 if req.greedy else req.n
            groups.setdefault(key, []).extend(_Row(i, prompt, budget, req.stop, req.seed) for _ in range(copies))
        results: list[list[Completion]] = [[] for _ in requests]
        want_lp = max((r.logprobs for r in requests if r.logprobs is not None), default=None)
        for key, rows in groups.items():
            rows.sort(key=lambda r: -len(r.prompt))
            for start in range(0, len(rows), self.settings.batch_size):
                chunk = rows[start : start + self.settings.batch_size]
                for row, comp in zip(chunk, self._generate_batch(chunk, key, want_lp, requests), strict=True):
                    results[row.req].append(comp)
        for req, comps in zip(requests, results, strict=True):
            if req.greedy and req.n > 1:
                comps.extend(comps[0].copy() for _ in range(req.n - 1))
        return results

    def _generate_batch(
        self, rows: list[_Row], key: tuple, want_lp: int | None, requests: Sequence[GenerationRequest]
    ) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        greedy, temperature, top_p, top_k = key
        width = max(len(r.prompt) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt) :] = 1
        stopper = _RowStopper(rows, width, self.tokenizer)
        # Every field a greedy generate reads is set: transformers fills unset (None) fields from
        # the model's generation_config (e.g. a repetition_penalty), which vLLM would not apply.
        # generate is greedy; sampled rows are drawn by _RowSampler.
        config = GenerationConfig(
            max_new_tokens=max(r.budget for r in rows),
            min_new_tokens=0,
            do_sample=False,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=want_lp is not None,
        )
        processors = LogitsProcessorList()
        if not greedy:
            seed = next((r.seed for r in rows if r.seed is not None), self.settings.seed)
            generator = torch.Generator(device=self.device).manual_seed(seed)
            processors.append(_RowSampler(temperature, top_p, top_k or 0, generator))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                past_key_values=self._shared_prefill(rows, input_ids, mask),
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        gen = out.sequences[:, width:].tolist()
        comps = []
        for i, row in enumerate(rows):
            comps.append(self._finish(gen[i], row, stopper.stopped_at[i], requests[row.req]))
        if want_lp is not None:
            self._attach_logprobs(comps, rows, out.logits, requests)
        return comps

    def _shared_prefill(self, rows: list[_Row], input_ids: Any, mask: Any) -> Any:
        """The KV cache of all prompt tokens but the last, computed once per distinct prompt; None if none repeats.

        A request sampled ``n`` times is ``n`` rows with one prompt: their prompt is run through
        the model once and its cache copied to each row, as vLLM's prefix cache does.
        """
        import torch

        first: dict[tuple[int, ...], int] = {}  # prompt -> its index among the distinct prompts
        owner, unique = [], []  # each row's distinct prompt; the first row of each distinct prompt
        for i, r in enumerate(rows):
            if tuple(r.prompt) not in first:
                first[tuple(r.prompt)] = len(unique)
                unique.append(i)
            owner.append(first[tuple(r.prompt)])
        if len(unique) == len(rows) or input_ids.shape[1] < 2:
            return None
        ids, m = input_ids[unique, :-1], mask[unique, :-1]
        pos = (m.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device), attention_mask=m.to(self.device), position_ids=pos.to(self.device),
            use_cache=True, logits_to_keep=1,
        )
        cache = out.past_key_values
        cache.reorder_cache(torch.tensor(owner, device=self.device))
        return cache

    def _finish(self, tokens: list[int], row: _Row, stopped_at: int | None, req: GenerationRequest) -> Completion:
        limit = stopped_at if stopped_at is not None else min(len(tokens), row.budget)
        eos_pos = next((j for j, t in enumerate(tokens[:limit]) if t in self.eos_ids), None)
        reason: FinishReason
        stop = None
        if eos_pos is not None:
            tokens, reason = tokens[: eos_pos + 1], "eos"
        elif stopped_at is not None:
            tokens, reason = tokens[:stopped_at], "stop"
        else:
            tokens, reason = tokens[:limit], "length"
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if reason == "stop":
            text, stop = cut_at_stop(text, req.stop, req.include_stop)
            if stop is None:
                raise RuntimeError("internal error: a stop string fired but is not in the decoded text")
        return Completion(text, tokens, reason, stop)

    def _attach_logprobs(
        self, comps: list[Completion], rows: list[_Row], logits: Sequence[Any], requests: Sequence[GenerationRequest]
    ) -> None:
        import torch

        for c in comps:
            c.token_logprobs, c.logprobs = [], []
        for step, step_logits in enumerate(logits):
            active = [i for i, c in enumerate(comps) if step < len(c.token_ids) and requests[rows[i].req].logprobs is not None]
            if not active:
                break
            lp = torch.log_softmax(step_logits[active].float(), dim=-1)
            k = max(requests[rows[i].req].logprobs or 0 for i in active)
            top_v, top_i = (lp.topk(k, dim=-1) if k > 0 else (None, None))
            for a, i in enumerate(active):
                c, kr = comps[i], requests[rows[i].req].logprobs or 0
                tok = c.token_ids[step]
                entry = {int(t): float(v) for t, v in zip(top_i[a, :kr].tolist(), top_v[a, :kr].tolist())} if kr else {}
                entry[tok] = float(lp[a, tok])
                c.logprobs.append(entry)  # type: ignore[union-attr]
                c.token_logprobs.append(entry[tok])  # type: ignore[union-attr]
        for c, row in zip(comps, rows, strict=True):
            if requests[row.req].logprobs is None:
                c.token_logprobs = c.logprobs = None

    # -- scoring -----------------------------------------------------------------------------

    def _sequence_logprobs(self, seqs: Sequence[list[int]]) -> list[list[float]]:
        """``out[s][j]``: log-probability of ``seqs[s][j + 1]`` given the tokens before it."""
        import torch

        result: list[list[float]] = []
        for start in range(0, len(seqs), self.settings.batch_size):
            chunk = seqs[start : start + self.settings.batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, s in enumerate(chunk):
                ids[i, width - len(s) :] = torch.tensor(s)
                mask[i, width - len(s) :] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=pos.to(self.device)
                ).logits.float()
            lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(self.device))[..., 0]
            for i, s in enumerate(chunk):
                result.append(lp[i, width - len(s) :].tolist())
        return result

    def score_continuations(self, prompt: str | GenerationRequest, candidates: Sequence[str]) -> list[float]:
        return self.score_many([prompt], candidates)[0]

    def score_many(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> list[list[float]]:
        """:meth:`score_continuations` of every prompt, batched (``batch_size`` sequences per forward)."""
        pairs = [candidate_sequences(self.tokenizer, p, candidates, self.max_model_len) for p in prompts]
        lps = iter(self._sequence_logprobs([seq for _, full in pairs for seq in full]))
        return [[float(sum(next(lps)[len(base) - 1 :])) for _ in full] for base, full in pairs]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        self.model = None
        import gc

        gc.collect()

