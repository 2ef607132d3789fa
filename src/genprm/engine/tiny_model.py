"""A tiny, locally built chat model for tests, benchmarks and CPU demos (no model hub needed).

:func:`build_tiny_model` trains a byte-level BPE tokenizer (digits split one by one, a chat
template) on arithmetic solutions written as ``Step k: a op b = c`` lines, then briefly trains
a randomly initialised ``LlamaForCausalLM`` (hidden 128, 2 layers, 4 heads of 32, FFN 512, tied
embeddings) on the same text, so greedy continuations follow the step format instead of
repeating one token, and saves both with ``save_pretrained``::

    from genprm.engine.tiny_model import build_tiny_model
    path = build_tiny_model("/tmp/tiny")   # ~20-60 s on 2 CPU cores

The EOS token is ``<|end|>`` (it closes each chat turn).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

__all__ = ["build_tiny_model", "arithmetic_solution", "CHAT_TEMPLATE", "EOS", "PAD"]

log = logging.getLogger(__name__)

EOS = "<|end|>"
PAD = "<pad>"
SPECIALS = [PAD, EOS, "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ '\\n' }}{{ m['content'] }}<|end|>{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{{ '\\n' }}{% endif %}"
)


def arithmetic_solution(rng: random.Random, steps: int | None = None) -> tuple[str, str]:
    """A problem statement and its step-by-step solution (``Step k: a op b = c`` lines)."""
    steps = steps or rng.randint(1, 3)
    value = rng.randint(1, 20)
    problem = str(value)
    lines = []
    for k in range(1, steps + 1):
        op = rng.choice("+-*")
        b = rng.randint(1, 9) if op == "*" else rng.randint(1, 20)
        new = value + b if op == "+" else value - b if op == "-" else value * b
        problem = f"({problem} {op} {b})" if k < steps else f"{problem} {op} {b}"
        lines.append(f"Step {k}: {value} {op} {b} = {new}")
        value = new
    return f"Compute {problem}.", "\n".join(lines) + f"\nThe answer is {value}."


def _documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        problem, solution = arithmetic_solution(rng)
        docs.append(f"<|user|>\n{problem}{EOS}\n<|assistant|>\n{solution}{EOS}\n")
    return docs


def train_on_documents(
    model, docs: list[list[int]], *, steps: int, batch: int, lr: float, rng: random.Random, name: str, log_every: int
) -> None:
    """Plain next-token training on whole token documents (linear warm-up and decay, AdamW).

    Used to give the tiny test models non-degenerate continuations; ``rng`` picks the batches.
    """
    import torch

    pad = model.config.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    model.train()
    for step in range(steps):
        rows = rng.sample(docs, batch)
        width = max(len(r) for r in rows)
        ids = torch.full((batch, width), pad, dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(r)] = torch.tensor(r)
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            log.info("%s step %d loss %.3f", name, step, loss.item())


def build_tiny_model(out_dir: str | Path, train_steps: int = 300, seed: int = 0, n_docs: int = 2000, batch: int = 24) -> Path:
    """Build tokenizer + briefly trained Llama model in ``out_dir``; returns the folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = _documents(n_docs, seed)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(docs, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, chat_template=CHAT_TEMPLATE)
    hf_tok.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=hf_tok.convert_tokens_to_ids(EOS),
        pad_token_id=hf_tok.convert_tokens_to_ids(PAD),
        bos_token_id=None,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    encoded = [hf_tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    rng = random.Random(seed)
    train_on_documents(model, encoded, steps=train_steps, batch=batch, lr=5e-3, rng=rng, name="tiny model", log_every=100)
    model.eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out
