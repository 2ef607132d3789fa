"""Session fixtures: one tiny world base model and realistic GenPRM SFT conversations shared by the training tests."""

from __future__ import annotations

import os
import random

import pytest

from genprm.conversation import ANALYZE_STOP, CODE_STOP, VERIFY_PREFIX, analyze_prefix, build_messages, code_output_block, judgement
from genprm.records import Problem, SFTExample
from genprm.world.policy import corrupt_steps
from genprm.world.problems import parse_problem, reference_steps


def assistant_turn(t: int, step: str, correct: bool) -> dict:
    """One assistant turn with its ``prefix_spans`` and ``exec_spans``."""
    parts: list[tuple[str, str]] = [
        ("prefix", analyze_prefix(t)),
        ("gen", f"the paragraph claims {step}. The claim is {'right' if correct else 'wrong'}.\n" + ANALYZE_STOP),
        ("prefix", VERIFY_PREFIX),
        ("gen", f"print({step.split(' = ')[0]} == {step.split(' = ')[1].split('.')[0]})" + CODE_STOP),
        ("exec", code_output_block(str(correct))),
        ("gen", "</verify>\n" + judgement(correct)),
    ]
    content, spans = "", {"prefix": [], "exec": []}
    for kind, text in parts:
        if kind != "gen":
            spans[kind].append([len(content), len(content) + len(text)])
        content += text
    return {"role": "assistant", "content": content, "prefix_spans": spans["prefix"], "exec_spans": spans["exec"]}


def sft_examples(problems: list[Problem], seed: int = 0) -> list[SFTExample]:
    rng = random.Random(seed)
    out = []
    for p in problems:
        chain = parse_problem(p.problem)
        good = reference_steps(chain)
        steps = good if rng.random() < 0.5 else corrupt_steps(chain, rng, rng.choice(["arithmetic", "copy"]))
        labels = []
        ok = True
        for s, g in zip(steps, good):
            ok = ok and s == g
            labels.append(int(ok))
        turns = [assistant_turn(t + 1, s, bool(lab)) for t, (s, lab) in enumerate(zip(steps, labels))]
        messages = build_messages(p.problem, steps)
        merged = [messages[0]]
        for u, a in zip(messages[1:], turns):
            merged += [u, a]
        out.append(SFTExample(id=f"sft/{p.id}", solution_id=p.id, messages=merged, step_labels=labels))
    return out


@pytest.fixture(scope="session")
def world_problems():
    from genprm.world.problems import generate_problems

    return generate_problems(300, seed=11)


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, world_problems):
    """The world policy after 150 steps: a real Llama checkpoint with the world tokenizer."""
    import torch

    from genprm.world.policy import PolicyConfig, bootstrap_policy

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("base") / "policy"
    bootstrap_policy(world_problems, out, PolicyConfig(steps=150, seed=0))
    return out


@pytest.fixture(scope="session")
def examples(world_problems):
    return sft_examples(world_problems[:64], seed=3)
