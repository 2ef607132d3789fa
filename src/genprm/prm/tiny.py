"""A tiny local GenPRM for tests and benchmarks: the world tokenizer and a briefly trained Llama.

:func:`build_tiny_genprm` trains the world's tokenizer (``Yes``/``No`` and the GenPRM tags are
single tokens) and a 2-layer ``LlamaForCausalLM`` (head_dim 32, so vLLM's CPU backend can run it)
for a few hundred optimizer steps on GenPRM conversations about world solutions: per step an
``<analyze>`` sentence, a ``<verify>`` block whose code is ``print(a op b == c)``, its
``[Code Output]`` and the judgement. The result speaks the staged protocol well enough for the
verifier's code paths (code execution, judgement log-probabilities) to run for real; its verdicts
are not meant to be good. Deterministic for a seed on one machine::

    path = build_tiny_genprm("/tmp/tiny_genprm")     # ~30-60 s on 2 cores
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    SYSTEM_PROMPT,
    VERIFY_PREFIX,
    analyze_prefix,
    build_messages,
    code_output_block,
    judgement,
)

__all__ = ["build_tiny_genprm", "tiny_conversation"]

log = logging.getLogger(__name__)


def tiny_conversation(problem: str, steps: list[str]) -> list[dict[str, str]]:
    """A GenPRM conversation about ``steps`` with one short code-checked turn per step."""
    from genprm.world.checker import parse_step

    turns = []
    for t, step in enumerate(steps, start=1):
        parsed = parse_step(step)
        expr = f"{parsed.left} {parsed.op} {parsed.right} == {parsed.result}" if parsed else "False"
        ok = bool(eval(expr)) if parsed else False  # noqa: S307 - world arithmetic written above
        turns.append(
            analyze_prefix(t)
            + f"the paragraph claims {step.split('.')[0]}.\n"
            + ANALYZE_STOP
            + VERIFY_PREFIX
            + f"print({expr})"
            + CODE_STOP
            + code_output_block(str(ok))
            + "</verify>\n"
            + judgement(ok)
        )
    return build_messages(problem, steps, turns, system=SYSTEM_PROMPT)


def build_tiny_genprm(out_dir: str | Path, *, train_steps: int = 80, seed: int = 0, n_problems: int = 200, batch: int = 4) -> Path:
    """Build tokenizer + tiny GenPRM in ``out_dir`` (``save_pretrained`` layout); returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from genprm.world.policy import corrupt_steps, tokenizer_corpus
    from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps
    from genprm.world.tokenizer import train_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    problems = generate_problems(n_problems, seed, WorldConfig(min_ops=1, max_ops=2, max_value=30, max_multiplicand=9))
    tok = train_tokenizer(tokenizer_corpus(problems, seed), vocab_size=400)
    docs = []
    for p in problems:
        chain = parse_problem(p.problem)
        steps = reference_steps(chain) if rng.random() < 0.5 else corrupt_steps(chain, rng, rng.choice(["arithmetic", "copy"]))
        text = tok.apply_chat_template(tiny_conversation(p.problem, steps), tokenize=False)
        docs.append(tok(text, add_special_tokens=False)["input_ids"][:512])
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    from genprm.engine.tiny_model import train_on_documents

    train_on_documents(model, docs, steps=train_steps, batch=batch, lr=4e-3, rng=rng, name="tiny genprm", log_every=50)
    model.eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
