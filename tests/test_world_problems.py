import hashlib
import json
import random

import pytest

from genprm.steps import format_steps, parse_steps
from genprm.world.checker import check_solution, parse_step
from genprm.world.problems import (
    Chain,
    WorldConfig,
    WorldFormatError,
    generate_chain,
    generate_problems,
    parse_problem,
    reference_steps,
    render_problem,
)


def test_rendering_uses_minimal_parentheses():
    assert render_problem(Chain((3, 4, 2, 5), ("+", "*", "-"))) == "Compute (3 + 4) * 2 - 5."
    assert render_problem(Chain((3, 4, 2), ("*", "+"))) == "Compute 3 * 4 + 2."
    assert render_problem(Chain((3, 4, 2, 2), ("-", "*", "*"))) == "Compute (3 - 4) * 2 * 2."
    assert render_problem(Chain((9, 4, 2, 3), ("-", "+", "*"))) == "Compute (9 - 4 + 2) * 3."


def test_parse_problem_round_trip_and_rejects_other_text():
    chain = Chain((3, 4, 2, 5), ("+", "*", "-"))
    assert parse_problem(render_problem(chain)) == chain
    for bad in ["What is 2 + 2?", "Compute 3 + 4 * 2.", "Compute 3 +.", "Compute (3 + 4).", "Compute 3 + * 4."]:
        with pytest.raises(WorldFormatError):
            parse_problem(bad)


def test_values_respect_bounds_and_standard_precedence():
    cfg = WorldConfig(min_ops=2, max_ops=4, max_operand=9, max_value=99)
    rng = random.Random(0)
    for _ in range(500):
        chain = generate_chain(rng, cfg)
        assert 2 <= len(chain.ops) <= 4
        assert all(1 <= a <= 9 for a in chain.operands)
        assert all(0 <= v <= 99 for v in chain.values)
        expr = render_problem(chain)[len("Compute "):-1]
        assert eval(expr) == chain.answer  # the rendered text means what the chain computes


def test_same_seed_same_bytes_different_seed_differs():
    def digest(seed):
        rows = [json.dumps(p.to_dict(), sort_keys=True) for p in generate_problems(200, seed)]
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


def test_reference_solution_is_correct():
    for p in generate_problems(300, 3):
        res = check_solution(p.problem, p.solution)
        assert res.first_error == -1, (p.problem, p.solution, res)
        assert res.final_correct and res.final_answer == p.answer
        assert len(parse_steps(p.solution)) == p.metadata["n_ops"]


def test_config_validation():
    with pytest.raises(ValueError, match="min_ops"):
        WorldConfig(min_ops=5, max_ops=3)
    with pytest.raises(ValueError):
        WorldConfig(max_opernd=3)


def test_parse_step():
    s = parse_step("14 - 5 = 9. The answer is 9.")
    assert (s.left, s.op, s.right, s.result, s.answer) == (14, "-", 5, 9, 9)
    assert parse_step("3 + 4 = 7").answer is None
    assert parse_step("3 / 4 = 7") is None
    assert parse_step("three plus four") is None


def test_words_statement_round_trips_and_is_checked_like_the_expression():
    chain = Chain((3, 4, 2, 5), ("+", "*", "-"))
    words = render_problem(chain, "words")
    assert words == "Start with 3. Add 4. Multiply by 2. Subtract 5."
    assert parse_problem(words) == chain
    problems = generate_problems(20, 7, WorldConfig(statement="words", max_value=20))
    same = generate_problems(20, 7, WorldConfig(max_value=20))
    assert [parse_problem(p.problem) for p in problems] == [parse_problem(p.problem) for p in same]
    assert all(p.problem.startswith("Start with ") for p in problems)
    for p, q in zip(problems, same):  # the checker judges a solution the same way in either statement
        steps = parse_steps(p.solution)
        assert check_solution(p.problem, steps).first_error == check_solution(q.problem, steps).first_error == -1
        slip = [*steps[:-1], steps[-1].replace("=", "= 1 +", 1)]
        assert check_solution(p.problem, slip).step_errors == check_solution(q.problem, slip).step_errors


@pytest.mark.parametrize("bad", [
    "Start with 3.",                          # no operation
    "Start with 3. Divide by 4.",             # not a world operation
    "Start with 3. Add 4. Start with 2.",     # two starts
    "Start with 3.  Add 4.",                  # not canonical (two spaces)
    "Start with 3. Add 4",                    # no final period
    "Start with 3. Add 4. What is it?",       # extra text
])
def test_words_statement_rejects_other_text(bad):
    with pytest.raises(WorldFormatError):
        parse_problem(bad)


def test_unknown_statement_is_an_error():
    with pytest.raises(ValueError, match="statement"):
        render_problem(Chain((1, 2), ("+",)), "latex")
    with pytest.raises(ValueError, match="statement"):
        WorldConfig(statement="latex")
