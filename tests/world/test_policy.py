"""World policy bootstrap: error injection, the tokenizer, a deterministic standard model folder."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import pytest

from genprm.world.checker import check_solution
from genprm.world.policy import ModelShape, PolicyConfig, bootstrap_policy, corrupt_steps, measure_policy
from genprm.steps import format_steps
from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps, render_problem
from genprm.records import Solution

WORLD = WorldConfig(max_value=30, max_multiplicand=9)


@pytest.mark.parametrize("kind", ["arithmetic", "copy"])
def test_corrupt_steps_injects_one_error_of_the_kind(kind):
    rng = random.Random(0)
    for p in generate_problems(200, 3, WORLD):
        chain = parse_problem(p.problem)
        steps = corrupt_steps(chain, rng, kind)
        res = check_solution(render_problem(chain), steps)
        assert res.first_error >= 0 and res.first_error_kind == kind
        # the error is carried forward, not repeated: exactly one wrong step
        assert sum(e is not None for e in res.step_errors) == 1
        assert not res.final_correct or kind == "copy"  # a copy slip can land on the right answer


def test_measure_policy_counts_kinds():
    p = "Compute (3 + 4) * 2."
    sols = [
        Solution(id="a", problem_id="p", problem=p, steps=["3 + 4 = 7", "7 * 2 = 14. The answer is 14."]),
        Solution(id="b", problem_id="p", problem=p, steps=["3 + 4 = 8", "8 * 2 = 16. The answer is 16."]),
        Solution(id="c", problem_id="p", problem=p, steps=["3 + 5 = 8", "8 * 2 = 16. The answer is 16."]),
        Solution(id="d", problem_id="p", problem=p, steps=["3 + 4 = 7", "7 * 2 = 14. The answer is 14."]),
    ]
    m = measure_policy(sols)
    assert m["accuracy"] == 0.5 and m["first_error_kinds"] == {"arithmetic": 1, "copy": 1}
    assert m["first_error_share"] == {"arithmetic": 0.5, "copy": 0.5}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    problems = generate_problems(200, 1, WORLD)
    cfg = PolicyConfig(steps=30, batch_size=8, warmup_steps=5, model=ModelShape(vocab_size=400))
    dirs = [tmp_path_factory.mktemp(f"policy{i}") for i in range(2)]
    reports = [bootstrap_policy(problems, d, cfg) for d in dirs]
    return dirs, reports


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_same_params_same_bytes(tiny_runs):
    (a, b), (ra, rb) = tiny_runs
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json", "generation_config.json"):
        assert _digest(a / name) == _digest(b / name), name
    assert ra["final_loss"] == rb["final_loss"] and ra["final_loss"] < ra["first_loss"]


@pytest.mark.slow
def test_standard_folder_and_tokenizer(tiny_runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_runs[0][0]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.hidden_size // model.config.num_attention_heads >= 32
    for word in ("<analyze>", "</analyze>", "<verify>", "</verify>", "<output>", "</output>", "Yes", "No"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    digits = tok.convert_ids_to_tokens(tok("12345", add_special_tokens=False)["input_ids"])
    assert digits == ["1", "2", "3", "4", "5"]
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Compute 3 + 4."}, {"role": "assistant", "content": "Step 1: 3 + 4 = 7"}],
        tokenize=False,
    )
    assert text == "<|im_start|>user\nCompute 3 + 4.<|im_end|>\n<|im_start|>assistant\nStep 1: 3 + 4 = 7<|im_end|>\n"
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        return_assistant_tokens_mask=True, return_dict=True,
    )
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == "A<|im_end|>"


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_loads_the_policy(tiny_runs):
    code = (
        "from vllm import LLM, SamplingParams\n"
        f"llm = LLM(model={str(tiny_runs[0][0])!r}, dtype='float32', enforce_eager=True, "
        "distributed_executor_backend='uni', seed=0)\n"
        "out = llm.generate(['<|im_start|>user\\nCompute 3 + 4.<|im_end|>\\n<|im_start|>assistant\\nStep 1:'],"
        " SamplingParams(max_tokens=8, temperature=0))\n"
        "print('GENERATED', len(out[0].outputs[0].token_ids))\n"
    )
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "GENERATED" in r.stdout


def test_training_draws_corrupt_each_problem_afresh():
    """A problem's injected slip is drawn at every draw: the rate is the mix's, never fixed per problem."""
    from genprm.world.policy import _Examples, tokenizer_corpus
    from genprm.world.tokenizer import train_tokenizer

    problems = generate_problems(40, 5, WORLD)
    tok = train_tokenizer(tokenizer_corpus(problems, 0), vocab_size=300)
    cfg = PolicyConfig(error_share=0.4, arithmetic_share=0.5, slips="fresh")
    ex = _Examples(problems, tok, cfg, random.Random(0))
    answers_by_problem: dict[int, set[tuple[int, ...]]] = {}
    wrong = total = 0
    for ids, plen in ex.draw(4000):
        i = next(k for k, p in enumerate(ex.prompt_ids) if p == ids[:plen])
        answers_by_problem.setdefault(i, set()).add(tuple(ids[plen:]))
        wrong += ids[plen:] != ex.clean_ids[i]
        total += 1
    assert abs(wrong / total - 0.4) < 0.03
    # each problem shows its correct answer and several different slips over the draws
    assert all(len(v) >= 3 for v in answers_by_problem.values())
    # every draw decodes to the chat prompt plus a step-formatted answer ending with EOS
    ids, plen = ex.draw(1)[0]
    assert tok.decode(ids[plen:]).startswith("Step 1:") and ids[-1] == tok.eos_token_id


def test_two_cycles_save_the_genprm_base_at_the_end_of_the_first(tmp_path):
    from safetensors.torch import load_file

    problems = generate_problems(60, 3, WORLD)
    cfg = PolicyConfig(steps=12, base_steps=5, batch_size=4, warmup_steps=2, model=ModelShape(vocab_size=400))
    assert cfg.cycles() == [5, 7]
    bootstrap_policy(problems, tmp_path / "policy", cfg, base_dir=tmp_path / "base")
    base = load_file(tmp_path / "base" / "model.safetensors")
    final = load_file(tmp_path / "policy" / "model.safetensors")
    assert base.keys() == final.keys() and any((base[k] != final[k]).any() for k in base)
    assert (tmp_path / "base" / "tokenizer.json").read_text() == (tmp_path / "policy" / "tokenizer.json").read_text()
    # the base is the first cycle's model: a run of only those steps gives the same weights
    bootstrap_policy(problems, tmp_path / "short", cfg.model_copy(update={"steps": 5, "base_steps": None}))
    short = load_file(tmp_path / "short" / "model.safetensors")
    assert all((base[k] == short[k]).all() for k in base)
    with pytest.raises(ValueError, match="base_steps"):
        PolicyConfig(steps=5, base_steps=5)
    with pytest.raises(ValueError, match="base_slips needs base_steps"):
        PolicyConfig(steps=5, base_slips="fixed")


def test_first_cycle_with_fixed_slips_then_fresh(tmp_path):
    """base_slips: the base is exactly a fixed-slip run of base_steps; the second cycle draws its slips afresh."""
    from safetensors.torch import load_file

    from genprm.world.policy import _Examples, tokenizer_corpus
    from genprm.world.tokenizer import train_tokenizer

    problems = generate_problems(60, 3, WORLD)
    cfg = PolicyConfig(steps=12, base_steps=5, base_slips="fixed", slips="fresh", batch_size=4, warmup_steps=2,
                       model=ModelShape(vocab_size=400))
    assert [cfg.slips_at(s) for s in (0, 4, 5, 11)] == ["fixed", "fixed", "fresh", "fresh"]
    bootstrap_policy(problems, tmp_path / "policy", cfg, base_dir=tmp_path / "base")
    fixed = cfg.model_copy(update={"steps": 5, "base_steps": None, "base_slips": None, "slips": "fixed"})
    bootstrap_policy(problems, tmp_path / "fixed", fixed)
    base, short = (load_file(tmp_path / d / "model.safetensors") for d in ("base", "fixed"))
    assert all((base[k] == short[k]).all() for k in base)

    tok = train_tokenizer(tokenizer_corpus(problems, 0), vocab_size=300)
    ex = _Examples(problems, tok, cfg, random.Random(0))
    assert set(ex.answer_ids) == {"fixed", "fresh"} and ex.clean_ids is ex.answer_ids["fresh"]
    for slips in ("fixed", "fresh"):
        seen: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
        for ids, plen in ex.draw(1500, slips):
            seen.setdefault(tuple(ids[:plen]), set()).add(tuple(ids[plen:]))
        one_each = all(len(v) == 1 for v in seen.values())
        assert one_each == (slips == "fixed")


def test_fixed_slips_are_drawn_once_per_problem():
    from genprm.world.policy import _Examples, tokenizer_corpus
    from genprm.world.tokenizer import train_tokenizer

    problems = generate_problems(40, 5, WORLD)
    tok = train_tokenizer(tokenizer_corpus(problems, 0), vocab_size=300)
    ex = _Examples(problems, tok, PolicyConfig(error_share=0.4, arithmetic_share=0.5, slips="fixed"), random.Random(0))
    seen: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
    for ids, plen in ex.draw(2000):
        seen.setdefault(tuple(ids[:plen]), set()).add(tuple(ids[plen:]))
    assert all(len(v) == 1 for v in seen.values())  # each problem always shows the same solution
    wrong = sum(a != tuple(tok(format_steps(reference_steps(c)) + tok.eos_token, add_special_tokens=False)["input_ids"])
                for c, a in zip(ex.chains, map(tuple, ex.clean_ids)))
    assert 0.2 < wrong / len(problems) < 0.6
