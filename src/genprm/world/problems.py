"""The embedded world's problems: left-to-right arithmetic chains that can be checked exactly.

A problem is a chain ``a0 o1 a1 o2 a2 ...`` of single-digit operands and the operators
``+ - *``, evaluated left to right, written with the fewest parentheses that make standard
precedence agree with that order::

    Compute (3 + 4) * 2 - 5.

or, with ``statement: words`` (for instruct models, which read sentences better than
precedence), one sentence per operation::

    Start with 3. Add 4. Multiply by 2. Subtract 5.

Every intermediate value stays within ``[0, max_value]``. The reference solution has one
step per operation, the last one stating the answer::

    Step 1: 3 + 4 = 7
    Step 2: 7 * 2 = 14
    Step 3: 14 - 5 = 9. The answer is 9.

:func:`generate_problems` is deterministic: the same config and seed give the same bytes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genprm.records import Problem

__all__ = [
    "OPS",
    "WorldConfig",
    "Chain",
    "WorldFormatError",
    "apply_op",
    "render_expression",
    "render_words",
    "render_problem",
    "parse_problem",
    "generate_chain",
    "generate_problems",
    "reference_steps",
    "answer_sentence",
]

OPS = ("+", "-", "*")


class WorldConfig(BaseModel):
    """Shape of the world's problems."""

    model_config = ConfigDict(extra="forbid")

    min_ops: int = Field(2, ge=1, description="fewest operations in a chain")
    max_ops: int = Field(4, ge=1, description="most operations in a chain")
    max_operand: int = Field(9, ge=1, le=9, description="operands are drawn from 1..max_operand")
    max_value: int = Field(99, ge=9, description="every intermediate value stays in 0..max_value")
    max_multiplicand: int = Field(
        99, ge=1, description="'*' is applied only while the running value is at most this (9: one-digit tables)"
    )
    statement: Literal["expression", "words"] = Field(
        "expression", description="'Compute (3 + 4) * 2.' or 'Start with 3. Add 4. Multiply by 2.'"
    )

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if self.min_ops > self.max_ops:
            raise ValueError(f"min_ops ({self.min_ops}) > max_ops ({self.max_ops})")
        return self

    def reshaped(self, shape: dict | None) -> WorldConfig:
        """This shape with the keys of ``shape`` changed, validated as a whole (a source's ``shape``)."""
        return WorldConfig.model_validate({**self.model_dump(), **shape}) if shape else self


class WorldFormatError(ValueError):
    """A text is not a problem of the world."""


@dataclass(frozen=True)
class Chain:
    """Operands ``a0..an`` and operators ``o1..on`` of one problem."""

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def values(self) -> list[int]:
        """Intermediate results after each operation (the last one is the answer)."""
        out, acc = [], self.operands[0]
        for op, b in zip(self.ops, self.operands[1:]):
            acc = apply_op(acc, op, b)
            out.append(acc)
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]


def apply_op(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def render_expression(chain: Chain) -> str:
    """Left-to-right chain with the fewest parentheses standard precedence needs."""
    expr, top = str(chain.operands[0]), None
    for op, b in zip(chain.ops, chain.operands[1:]):
        if op == "*" and top in ("+", "-"):
            expr = f"({expr})"
        expr, top = f"{expr} {op} {b}", op
    return expr


_WORDS = {"+": "Add", "-": "Subtract", "*": "Multiply by"}


def render_words(chain: Chain) -> str:
    """The chain as sentences: ``Start with 3. Add 4. Multiply by 2.``"""
    operations = (f"{_WORDS[op]} {b}." for op, b in zip(chain.ops, chain.operands[1:]))
    return " ".join([f"Start with {chain.operands[0]}.", *operations])


def render_problem(chain: Chain, statement: str = "expression") -> str:
    """The problem text in the world's ``statement`` form (``expression`` or ``words``)."""
    if statement == "words":
        return render_words(chain)
    if statement != "expression":
        raise ValueError(f"unknown statement form {statement!r} (expression, words)")
    return f"Compute {render_expression(chain)}."


_PROBLEM = re.compile(r"^Compute (.+)\.$")
_TOKEN = re.compile(r"\d+|[+\-*]")
_SENTENCE = re.compile(r"(Start with|Add|Subtract|Multiply by) (\d+)\.")
_OP_OF_WORD = {word: op for op, word in _WORDS.items()}


def _parse_words(text: str) -> Chain:
    sentences = _SENTENCE.findall(text)
    if not sentences or sentences[0][0] != "Start with" or len(sentences) < 2:
        raise WorldFormatError(f"not a world problem (expected 'Start with <n>. <operation> <n>. ...'): {text!r}")
    if any(word == "Start with" for word, _ in sentences[1:]):
        raise WorldFormatError(f"not a world problem ('Start with' twice): {text!r}")
    chain = Chain(tuple(int(n) for _, n in sentences), tuple(_OP_OF_WORD[word] for word, _ in sentences[1:]))
    if render_words(chain) != text:
        raise WorldFormatError(f"not a world problem (not in the world's canonical form): {text!r}")
    return chain


def parse_problem(text: str) -> Chain:
    """Inverse of :func:`render_problem` (either form); raises :class:`WorldFormatError` on other text."""
    if text.strip().startswith("Start with"):
        return _parse_words(text.strip())
    m = _PROBLEM.match(text.strip())
    if not m:
        raise WorldFormatError(
            f"not a world problem (expected 'Compute <expression>.' or 'Start with <n>. ...'): {text!r}"
        )
    tokens = _TOKEN.findall(m.group(1))
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise WorldFormatError(f"not a world problem (malformed expression): {text!r}")
    try:
        operands = tuple(int(t) for t in tokens[0::2])
    except ValueError:
        raise WorldFormatError(f"not a world problem (operator where an operand belongs): {text!r}") from None
    ops = tuple(tokens[1::2])
    if any(op not in OPS for op in ops):
        raise WorldFormatError(f"not a world problem (operand where an operator belongs): {text!r}")
    chain = Chain(operands, ops)
    if render_expression(chain) != m.group(1):
        raise WorldFormatError(f"not a world problem (not in the world's canonical form): {text!r}")
    return chain


def generate_chain(rng: random.Random, cfg: WorldConfig) -> Chain:
    """One chain whose every intermediate value lies in ``[0, cfg.max_value]``."""
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    acc = rng.randint(1, cfg.max_operand)
    operands, ops = [acc], []
    for _ in range(n_ops):
        choices = [(op, b) for op in OPS for b in range(1, cfg.max_operand + 1)]
        rng.shuffle(choices)
        op, b = next(
            (op, b)
            for op, b in choices
            if 0 <= apply_op(acc, op, b) <= cfg.max_value and (op != "*" or acc <= cfg.max_multiplicand)
        )
        acc = apply_op(acc, op, b)
        operands.append(b)
        ops.append(op)
    return Chain(tuple(operands), tuple(ops))


def answer_sentence(value: int | str) -> str:
    return f"The answer is {value}."


def reference_steps(chain: Chain) -> list[str]:
    """The correct step-by-step solution, one step per operation."""
    steps, acc = [], chain.operands[0]
    for op, b in zip(chain.ops, chain.operands[1:]):
        res = apply_op(acc, op, b)
        steps.append(f"{acc} {op} {b} = {res}")
        acc = res
    steps[-1] += f". {answer_sentence(acc)}"
    return steps


def generate_problems(n: int, seed: int, cfg: WorldConfig | None = None, *, prefix: str = "world") -> list[Problem]:
    """``n`` problems drawn with ``random.Random(seed)``; ids are ``{prefix}/{seed}/{i}``."""
    from genprm.steps import format_steps

    cfg = cfg or WorldConfig()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        chain = generate_chain(rng, cfg)
        out.append(
            Problem(
                id=f"{prefix}/{seed}/{i}",
                problem=render_problem(chain, cfg.statement),
                answer=str(chain.answer),
                source="world",
                solution=format_steps(reference_steps(chain)),
                metadata={"n_ops": len(chain.ops)},
            )
        )
    return out
