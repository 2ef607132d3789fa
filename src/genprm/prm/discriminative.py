"""A discriminative PRM (Qwen2.5-Math-PRM style): a 2-class head at step-separator tokens.

The solution is one assistant turn whose steps are each followed by ``separator`` (one token of
the tokenizer, ``<extra_0>`` for Qwen2.5-Math-PRM); the model (``AutoModelForTokenClassification``
with 2 labels, or any model whose output ``logits`` are ``[batch, length, 2]``) is run once per
solution and the reward of step k is the softmax probability of class 1 at the k-th separator::

    prm = DiscriminativePRM("path/to/prm", separator="<extra_0>")
    prm.score(["Compute 3 + 4."], [["3 + 4 = 7.", "The answer is 7."]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genprm.logs import progress
from genprm.prm.base import check_inputs

__all__ = ["DiscriminativePRM", "DEFAULT_SYSTEM"]

DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


class DiscriminativePRM:
    def __init__(
        self,
        model: str | Any,
        tokenizer: Any = None,
        *,
        separator: str = "<extra_0>",
        system: str | None = DEFAULT_SYSTEM,
        device: str = "cpu",
        max_length: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        if isinstance(model, str):
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForTokenClassification.from_pretrained(model, num_labels=2)
        if tokenizer is None:
            raise ValueError("a model object needs its tokenizer")
        ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"separator {separator!r} is {len(ids)} tokens for this tokenizer; it must be exactly one")
        self.model, self.tokenizer, self.separator, self.sep_id = model.to(device).eval(), tokenizer, separator, ids[0]
        self.system, self.device, self.torch = system, device, torch
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", None)

    def _ids(self, problem: str, steps: Sequence[str]) -> list[int]:
        for j, s in enumerate(steps):
            if self.separator in s:
                raise ValueError(f"step {j} contains the separator {self.separator!r}")
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": problem},
            {"role": "assistant", "content": self.separator.join(steps) + self.separator},
        ]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = "\n".join(m["content"] for m in messages)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        check_inputs(problems, solutions)
        torch = self.torch
        out = []
        for problem, steps in progress(zip(problems, solutions), desc="discriminative prm", total=len(problems)):
            ids = self._ids(problem, steps)
            if self.max_length is not None and len(ids) > self.max_length:
                raise ValueError(f"solution of {len(ids)} tokens exceeds the model's {self.max_length}")
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0]
            if logits.shape[-1] != 2:
                raise ValueError(f"the reward head has {logits.shape[-1]} classes, expected 2")
            where = [i for i, t in enumerate(ids) if t == self.sep_id]
            if len(where) != len(steps):
                raise ValueError(f"{len(where)} separators in the rendered input for {len(steps)} steps")
            probs = torch.softmax(logits[where].float(), dim=-1)[:, 1]
            out.append([float(p) for p in probs])
        return out
