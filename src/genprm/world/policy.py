"""Bootstrap the world's policy: a tiny Llama trained from scratch on step-forced solutions.

The policy must make real step mistakes of both kinds at a controlled rate, not by being
under-trained. So a share of its training solutions (``error_share``) carry one injected
wrong step, either an arithmetic slip (wrong result) or a copy slip (an operand or operator
taken wrongly from the problem); later steps continue correctly from the wrong value, as a
real solver would. Sampling the trained policy then reproduces that mix.

Training is budgeted in optimizer steps with a seed (never wall-clock) and is deterministic
on one machine. The result is a standard model folder (``config.json``, safetensors,
tokenizer files, ``generation_config.json``) that ``AutoModelForCausalLM`` and vLLM load.

Use::

    cfg = PolicyConfig()
    report = bootstrap_policy(train_problems, "models/policy", cfg)
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    FALLBACK_JUDGEMENT,
    SYSTEM_PROMPT,
    VERIFY_PREFIX,
    analyze_prefix,
    code_output_block,
    judgement,
)
from genprm.records import Problem
from genprm.steps import STEP_PREFIX, format_steps
from genprm.world.problems import OPS, Chain, answer_sentence, apply_op, parse_problem, reference_steps

__all__ = [
    "ModelShape",
    "PolicyConfig",
    "corrupt_steps",
    "policy_messages",
    "tokenizer_corpus",
    "bootstrap_policy",
    "measure_policy",
]

log = logging.getLogger(__name__)


class ModelShape(BaseModel):
    """Shape of a tiny ``LlamaForCausalLM`` (head_dim = hidden / heads must be >= 32 for vLLM on CPU)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 2048
    vocab_size: int = Field(768, description="BPE vocabulary before the added tokens")

    @model_validator(mode="after")
    def _check(self) -> ModelShape:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.hidden_size // self.num_heads < 32:
            raise ValueError(f"head_dim {self.hidden_size // self.num_heads} < 32: vLLM's CPU attention cannot run it")
        return self


class PolicyConfig(BaseModel):
    """The ``policy`` section of ``params.yaml``."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    model: ModelShape = Field(default_factory=ModelShape)
    steps: int = Field(1200, ge=1, description="optimizer steps")
    base_steps: int | None = Field(
        None, ge=1, description="steps of a first learning-rate cycle; the model at its end is the GenPRM's base "
        "(bootstrap_policy's base_dir), then a second cycle trains the policy for the remaining steps",
    )
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = 0.01
    error_share: float = Field(0.4, ge=0, le=1, description="share of training solutions with one injected wrong step")
    arithmetic_share: float = Field(0.5, ge=0, le=1, description="of injected errors, the share that are arithmetic slips")
    slips: Literal["fixed", "fresh"] = Field(
        "fixed", description="a training problem's slip is drawn once before training or at every draw")
    base_slips: Literal["fixed", "fresh"] | None = Field(
        None, description="slips of the first cycle (base_steps); null: as `slips`")
    threads: int = Field(1, ge=1, description="torch CPU threads (2 on a 2-core CPU: 1.7x the steps per second of 1)")

    @model_validator(mode="after")
    def _cycles(self) -> PolicyConfig:
        if self.base_steps is not None and self.base_steps >= self.steps:
            raise ValueError(f"base_steps ({self.base_steps}) must be below steps ({self.steps})")
        if self.base_slips is not None and self.base_steps is None:
            raise ValueError("base_slips needs base_steps (the first cycle it applies to)")
        return self

    def slips_at(self, step: int) -> str:
        """The slips of optimizer step ``step`` (0-based): ``base_slips`` in the first cycle, else ``slips``."""
        if self.base_steps is not None and step < self.base_steps:
            return self.base_slips or self.slips
        return self.slips

    def cycles(self) -> list[int]:
        """Lengths of the learning-rate cycles (warm-up then cosine decay each)."""
        return [self.steps] if self.base_steps is None else [self.base_steps, self.steps - self.base_steps]


def _slip(value: int, rng: random.Random) -> int:
    """A plausible wrong result: off by a little, never equal, never negative."""
    for _ in range(20):
        wrong = value + rng.choice([-10, -2, -1, 1, 2, 10])
        if wrong >= 0 and wrong != value:
            return wrong
    return value + 1


def corrupt_steps(chain: Chain, rng: random.Random, kind: str) -> list[str]:
    """A solution with one wrong step of ``kind`` ('arithmetic' or 'copy') at a random position.

    Steps after the wrong one compute correctly from the wrong value; the last step states
    the (wrong) result as the answer.
    """
    n = len(chain.ops)
    bad = rng.randrange(n)
    steps, acc = [], chain.operands[0]
    for i, (op, b) in enumerate(zip(chain.ops, chain.operands[1:])):
        if i == bad and kind == "copy":
            if rng.random() < 0.5:
                b = rng.choice([d for d in range(1, 10) if d != b])
            else:
                op = rng.choice([o for o in OPS if o != op])
        res = apply_op(acc, op, b)
        if i == bad and kind == "arithmetic":
            res = _slip(res, rng)
        steps.append(f"{acc} {op} {b} = {res}")
        acc = res
    steps[-1] += f". {answer_sentence(acc)}"
    return steps


def policy_messages(problem: str) -> list[dict[str, str]]:
    """The policy's prompt: one user turn with the problem (the answer is forced to start with ``Step 1:``)."""
    return [{"role": "user", "content": problem}]


def tokenizer_corpus(problems: list[Problem], seed: int) -> list[str]:
    """Texts the world's tokenizer is trained on: problems, solutions and the GenPRM protocol's fixed texts.

    No rationale text: the tokenizer (and so the policy) does not change when a teacher's
    rationale format does.
    """
    rng = random.Random(seed)
    texts = [SYSTEM_PROMPT, VERIFY_PREFIX, CODE_STOP, ANALYZE_STOP, FALLBACK_JUDGEMENT, judgement(True), judgement(False)]
    for p in problems:
        chain = parse_problem(p.problem)
        texts.append(p.problem)
        steps = reference_steps(chain) if rng.random() < 0.5 else corrupt_steps(chain, rng, rng.choice(["arithmetic", "copy"]))
        texts.append(format_steps(steps))
        texts.append(analyze_prefix(rng.randrange(len(steps)) + 1))
        texts.append(code_output_block(str(rng.choice([True, False]))))
    return texts


class _Examples:
    """Training examples with injected slips: drawn once per problem (``fixed``) or at every draw (``fresh``).

    ``fixed`` corrupts each training problem's solution once, before training (at ``error_share``,
    kind by ``arithmetic_share``); ``fresh`` corrupts it each time the problem is drawn. With a
    fixed slip a well-trained policy learns *which* training problems carry one and slips less than
    its mix on new problems (0.74 accuracy for a mix that sets 0.65, after 1,200 steps); drawn
    afresh, the only thing to learn is the rate, but the arithmetic is learned later (seed 0 at
    800 steps: 0.37 against 0.62 fixed). With ``base_slips`` the first cycle may draw differently
    from the second (:meth:`PolicyConfig.slips_at`); the fixed draw is made first either way, so a
    fixed first cycle is exactly a fixed-slip run of ``base_steps``. Prompts and answers are
    tokenized once.
    """

    def __init__(self, problems: list[Problem], tokenizer, cfg: PolicyConfig, rng: random.Random):
        self.tokenizer, self.cfg, self.rng = tokenizer, cfg, rng
        self.chains = [parse_problem(p.problem) for p in problems]
        prompts = [tokenizer.apply_chat_template(policy_messages(p.problem), tokenize=False, add_generation_prompt=True)
                   for p in problems]
        self.prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        modes = {cfg.slips_at(0), cfg.slips}  # the first cycle's and the last's
        self.answer_ids: dict[str, list[list[int]]] = {}
        if "fixed" in modes:  # one draw per problem, in order, before any batch is drawn
            self.answer_ids["fixed"] = self._answers([self._slip(c) or reference_steps(c) for c in self.chains])
        if "fresh" in modes:
            self.answer_ids["fresh"] = self._answers([reference_steps(c) for c in self.chains])
        self.clean_ids = self.answer_ids[cfg.slips]

    def _slip(self, chain: Chain) -> list[str] | None:
        """A solution with one injected slip at the configured rate and mix; None: no slip this time."""
        if self.rng.random() < self.cfg.error_share:
            kind = "arithmetic" if self.rng.random() < self.cfg.arithmetic_share else "copy"
            return corrupt_steps(chain, self.rng, kind)
        return None

    def _answers(self, solutions: list[list[str]]) -> list[list[int]]:
        texts = [format_steps(steps) + self.tokenizer.eos_token for steps in solutions]
        assert all(t.startswith(STEP_PREFIX) for t in texts)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def draw(self, n: int, slips: str | None = None) -> list[tuple[list[int], int]]:
        """``n`` random (token ids, prompt length) pairs (``fresh``: each corrupted at the configured rate);
        ``slips`` defaults to the config's."""
        slips = slips or self.cfg.slips
        picks, corrupt = [], []
        for _ in range(n):
            i = self.rng.randrange(len(self.chains))
            if slips == "fresh" and (steps := self._slip(self.chains[i])) is not None:
                corrupt.append((len(picks), steps))
            picks.append(i)
        answers = [self.answer_ids[slips][i] for i in picks]
        if corrupt:
            for (slot, _), ids in zip(corrupt, self._answers([steps for _, steps in corrupt])):
                answers[slot] = ids
        return [(self.prompt_ids[i] + a, len(self.prompt_ids[i])) for i, a in zip(picks, answers)]


def bootstrap_policy(
    problems: list[Problem], out_dir: str | Path, cfg: PolicyConfig | None = None, base_dir: str | Path | None = None
) -> dict:
    """Train tokenizer and policy on ``problems``; save a standard model folder; return a report.

    With ``cfg.base_steps``, training runs two learning-rate cycles and the model at the end of
    the first is saved to ``base_dir`` (when given), a base for the GenPRM that is not the fully
    trained policy (``train.base_model``); ``cfg.base_slips`` lets the first cycle draw its slips
    differently. Measured (README, "How far these numbers hold"; ``bench/measured/``): a GenPRM
    fine-tuned from a policy whose slips were drawn afresh writes wrong claimed results and rejects
    nearly every correct step (F1 2-6 from 2,000 steps, 26-29 from an 800-step fresh first cycle);
    from a first cycle with fixed slips it accepts correct steps (F1 72-73).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from genprm.logs import progress
    from genprm.world.tokenizer import train_tokenizer

    cfg = cfg or PolicyConfig()
    out_dir = Path(out_dir)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)

    t0 = time.perf_counter()
    tokenizer = train_tokenizer(tokenizer_corpus(problems, cfg.seed), vocab_size=cfg.model.vocab_size)
    tok_seconds = time.perf_counter() - t0

    shape = cfg.model
    mcfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(mcfg)
    examples = _Examples(problems, tokenizer, cfg, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    cycles = cfg.cycles()

    def lr_at(step: int) -> float:
        for length in cycles:  # the step within its cycle
            if step < length:
                break
            step -= length
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, length - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))

    def save(folder: Path) -> None:
        model.eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        model.train()

    model.train()
    losses: list[float] = []
    t1 = time.perf_counter()
    for step in progress(range(cfg.steps), desc="policy", unit="step"):
        batch = examples.draw(cfg.batch_size, cfg.slips_at(step))
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, plen) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, plen : len(ids)] = torch.tensor(ids[plen:])
            attn[i, : len(ids)] = 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 200 == 0 or step == cfg.steps - 1:
            log.info("policy step %d/%d loss %.4f", step + 1, cfg.steps, losses[-1])
        if base_dir is not None and len(cycles) > 1 and step == cycles[0] - 1:
            save(Path(base_dir))
            log.info("GenPRM base saved after %d steps to %s", step + 1, base_dir)
    train_seconds = time.perf_counter() - t1
    save(out_dir)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "tokenizer_seconds": round(tok_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "steps": cfg.steps,
        "first_loss": round(losses[0], 4),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "loss_curve": [round(sum(losses[i : i + 50]) / len(losses[i : i + 50]), 4) for i in range(0, len(losses), 50)],
    }


def measure_policy(solutions) -> dict:
    """Accuracy and first-error mix of sampled world solutions, judged by the exact checker."""
    from genprm.world.checker import check_solution

    kinds: dict[str, int] = {}
    correct = 0
    for s in solutions:
        res = check_solution(s.problem, s.steps)
        correct += res.final_correct
        if res.first_error >= 0:
            kinds[res.first_error_kind] = kinds.get(res.first_error_kind, 0) + 1
    n_err = sum(kinds.values())
    return {
        "samples": len(solutions),
        "accuracy": round(correct / max(1, len(solutions)), 4),
        "process_error_rate": round(n_err / max(1, len(solutions)), 4),
        "first_error_kinds": dict(sorted(kinds.items())),
        "first_error_share": {k: round(v / max(1, n_err), 4) for k, v in sorted(kinds.items())},
    }
