"""The world's rule teacher: verdicts from executed code, both review formats, the Generator protocol.

Ground truth comes from the exact checker, used here in the tests only (never by the teacher).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    FALLBACK_JUDGEMENT,
    OUTPUT_STOP,
    VERIFY_PREFIX,
    analyze_prefix,
    build_messages,
    code_output_block,
    parse_judgement,
)
from genprm.engine.base import EngineError, GenerationRequest, Generator
from genprm.rationale.prompts import (
    earliest_error_to_one_based,
    earliest_error_to_zero_based,
    parse_whole_solution,
    parse_whole_solution_prompt,
    whole_solution_prompt,
)
from genprm.rationale.review import run_per_step_review, run_whole_solution_review
from genprm.sandbox import ExecResult, Sandbox, SandboxConfig
from genprm.world.checker import check_solution
from genprm.world.problems import Chain, apply_op, generate_problems, parse_problem, reference_steps, render_problem
from genprm.engine.settings import WorldTeacherSettings
from genprm.world.teacher import LOG_UNLIKELY, WorldTeacher

P = "Compute (3 + 4) * 2 - 5."

# Hand-made solutions of P: (name, steps, 0-based first error)
HAND_CASES = [
    ("reference", ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."], -1),
    ("arithmetic slip carried forward", ["3 + 4 = 7", "7 * 2 = 15", "15 - 5 = 10. The answer is 10."], 1),
    ("arithmetic slip in the last step", ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 8. The answer is 8."], 2),
    ("copied operand wrong", ["3 + 5 = 8", "8 * 2 = 16", "16 - 5 = 11. The answer is 11."], 0),
    ("copied operator wrong", ["3 + 4 = 7", "7 + 2 = 9", "9 - 5 = 4. The answer is 4."], 1),
    ("previous result copied wrong", ["3 + 4 = 7", "8 * 2 = 16", "16 - 5 = 11. The answer is 11."], 1),
    ("unparseable step, then correct ones", ["3 + 4 = 7", "Now multiply by two.", "14 - 5 = 9. The answer is 9."], 1),
    ("unparseable last step", ["3 + 4 = 7", "7 * 2 = 14", "The answer is nine."], 2),
    ("premature answer", ["3 + 4 = 7. The answer is 7.", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."], 0),
    ("answer disagrees with the result", ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 10."], 2),
    ("missing answer", ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9"], 2),
    ("extra step", ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9.", "9 + 1 = 10"], 3),
]


def _corrupt(chain: Chain, at: int, kind: str) -> list[str]:
    """A solution of ``chain`` with a hand-made error of ``kind`` at step ``at``, carried forward."""
    steps, acc = [], chain.operands[0]
    for i, (op, b) in enumerate(zip(chain.ops, chain.operands[1:])):
        if i == at and kind == "unparseable":
            steps.append(f"Then we {op} the {b}.")
            acc = apply_op(acc, op, b)
            continue
        if i == at and kind == "operand":
            b = b + 1
        if i == at and kind == "operator":
            op = "+" if op != "+" else "*"
        res = apply_op(acc, op, b)
        if i == at and kind == "arithmetic":
            res += 1
        steps.append(f"{acc} {op} {b} = {res}")
        acc = res
    if not steps[-1].startswith("Then"):
        steps[-1] += f". The answer is {acc}."
    return steps


def _generated_cases() -> list[tuple[str, list[str], int]]:
    rng = random.Random(11)
    cases = []
    for p in generate_problems(8, seed=5):
        chain = parse_problem(p.problem)
        cases.append((p.problem, reference_steps(chain), -1))
        for kind in ("arithmetic", "operand", "operator", "unparseable"):
            at = rng.randrange(len(chain.ops))
            cases.append((p.problem, _corrupt(chain, at, kind), at))
    return cases


ALL_CASES = [(P, steps, first) for _, steps, first in HAND_CASES] + _generated_cases()


def _labels(problem: str, steps: list[str]) -> list[bool]:
    first = check_solution(problem, steps).first_error
    return [first < 0 or i < first for i in range(len(steps))]


def _up_to_first_no(verdicts: list[bool]) -> list[bool]:
    """Verdicts up to and including the first No (each check is of one paragraph, so later ones may vary)."""
    return verdicts[: verdicts.index(False) + 1] if False in verdicts else verdicts


def _first_error_part(problem: str, steps: list[str]) -> list[bool]:
    return _up_to_first_no(_labels(problem, steps))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(timeout_s=2.0, pool_size=1)) as sb:
        yield sb


@pytest.fixture(scope="module")
def teacher() -> WorldTeacher:
    return WorldTeacher()


@dataclasses.dataclass
class FlippingSession:
    """Executes for real, then swaps True and False in the output: a buggy executor."""

    inner: object

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        result = self.inner.run(code, timeout)
        swapped = result.stdout.replace("True", "\0").replace("False", "True").replace("\0", "False")
        return dataclasses.replace(result, stdout=swapped)


def test_cases_are_what_they_claim():
    assert len(ALL_CASES) == len(HAND_CASES) + 40
    for problem, steps, first in ALL_CASES:
        assert check_solution(problem, steps).first_error == first, (problem, steps)


def test_per_step_verdicts_follow_first_error(teacher, sandbox):
    for problem, steps, _ in ALL_CASES:
        with sandbox.session() as session:
            turns = run_per_step_review(teacher, session, problem, steps)
        verdicts = [t["verdict"] for t in turns]
        assert _up_to_first_no(verdicts) == _first_error_part(problem, steps), (problem, steps)
        assert all(t["code_rounds"] == 1 and not t["fallback"] for t in turns)
        assert all(t["text"].startswith(analyze_prefix(i + 1)) for i, t in enumerate(turns))
        assert all(t["text"].endswith(OUTPUT_STOP) and "[Code Output]" in t["text"] for t in turns)


def test_words_statement_is_reviewed_like_the_expression(teacher, sandbox):
    """The same solutions of the same chains, stated in words: the same verdicts, the same code checks."""
    for problem, steps, _ in ALL_CASES:
        words = render_problem(parse_problem(problem), "words")
        with sandbox.session() as a, sandbox.session() as b:
            expr_turns = run_per_step_review(teacher, a, problem, steps)
            word_turns = run_per_step_review(teacher, b, words, steps)
        assert [t["verdict"] for t in word_turns] == [t["verdict"] for t in expr_turns], (words, steps)
        assert [t["text"] for t in word_turns] == [t["text"] for t in expr_turns]


def test_whole_solution_review_matches_checker(teacher, sandbox):
    for problem, steps, first in ALL_CASES:
        with sandbox.session() as session:
            text, earliest = run_whole_solution_review(teacher, session, problem, steps)
        assert earliest == first, (problem, steps, text)
        verdicts, boxed = parse_whole_solution(text, n_paragraphs=len(steps))
        assert _up_to_first_no(verdicts) == _first_error_part(problem, steps)
        assert boxed == earliest_error_to_one_based(first)
        assert text.count("[Code Output]") == len(steps)


def test_per_step_format_cannot_see_an_early_stop(teacher, sandbox):
    """Documented limit: the per-step teacher cannot know that the solution stops early."""
    steps = ["3 + 4 = 7", "7 * 2 = 14"]  # stops before the last operation, without an answer
    assert check_solution(P, steps).first_error == 1
    with sandbox.session() as session:
        assert [t["verdict"] for t in run_per_step_review(teacher, session, P, steps)] == [True, True]
        assert run_whole_solution_review(teacher, session, P, steps)[1] == 1


def test_a_right_result_from_wrong_operands_passes(teacher, sandbox):
    """Documented limit: the check compares results, so a copy error with the right result passes."""
    steps = ["2 + 5 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."]
    assert check_solution(P, steps).first_error == 0
    with sandbox.session() as session:
        assert [t["verdict"] for t in run_per_step_review(teacher, session, P, steps)] == [True, True, True]


def test_running_value_follows_the_problem_not_the_solution(teacher, sandbox):
    """After a slip, later paragraphs are checked against the problem's value, not the slip's."""
    steps = ["3 + 4 = 8", "8 * 2 = 16", "16 - 5 = 11. The answer is 11."]
    with sandbox.session() as session:
        turns = run_per_step_review(teacher, session, P, steps)
    assert [t["verdict"] for t in turns] == [False, False, False]
    assert "v = v * 2\n" in turns[1]["text"] and "claim = 16\n" in turns[1]["text"]


def test_verdicts_follow_a_buggy_executor(teacher, sandbox):
    steps = HAND_CASES[1][1]
    with sandbox.session() as inner:
        session = FlippingSession(inner)
        turns = run_per_step_review(teacher, session, P, steps)
        assert [t["verdict"] for t in turns] == [False, True, True]  # honest [True, False, False], flipped
        _, earliest = run_whole_solution_review(teacher, session, P, HAND_CASES[0][1])
        assert earliest == 0  # every check of the correct solution now reads False


def _turn_up_to_code(teacher: WorldTeacher, messages, t: int) -> str:
    prefix = analyze_prefix(t)
    request = GenerationRequest(messages=messages, assistant_prefix=prefix, stop=(ANALYZE_STOP,), include_stop=True)
    [[a]] = teacher.generate([request])
    prefix += a.text + VERIFY_PREFIX
    [[c]] = teacher.generate([dataclasses.replace(request, assistant_prefix=prefix, stop=(CODE_STOP,))])
    return prefix + c.text


def _code_of(turn: str) -> str:
    """The code block a turn written up to its code stop ends with."""
    return turn[turn.rfind("```python\n") + len("```python\n") : -len(CODE_STOP)]


def test_doctored_output_flips_the_verdict(teacher, sandbox):
    steps = HAND_CASES[1][1]  # step 2 (t=2) is wrong
    messages = build_messages(P, steps[:2], ["(turn 1)"])
    turn = _turn_up_to_code(teacher, messages, 2)
    first = _turn_up_to_code(teacher, build_messages(P, steps[:1]), 1)
    with sandbox.session() as session:  # paragraph 1's code sets the running value paragraph 2 uses
        session.run(_code_of(first))
        real = session.run(_code_of(turn))
    assert real.stdout.strip().splitlines()[-1] == "False"

    def judge(output: str) -> bool | None:
        prefix = turn + code_output_block(output)
        [[c]] = teacher.generate([GenerationRequest(messages=messages, assistant_prefix=prefix, stop=(OUTPUT_STOP,))])
        assert c.text.startswith("</verify>\n") and c.finish_reason == "stop"
        return parse_judgement(c.text)

    assert judge(real.stdout.strip()) is False
    assert judge("paragraph 1: True\nparagraph 2: True\nTrue") is True  # doctored
    assert judge("Code execute Error: NameError: name 'x' is not defined") is False
    assert judge("Code execute time out: Code execution timed out") is False
    assert judge("") is False
    # score_continuations reads the same output
    slot = "</verify>\n" + FALLBACK_JUDGEMENT
    doctored = GenerationRequest(messages=messages, assistant_prefix=turn + code_output_block("True") + slot + "{")
    assert teacher.score_continuations(doctored, ["Yes", "No"]) == [0.0, LOG_UNLIKELY]
    honest = dataclasses.replace(doctored, assistant_prefix=turn + code_output_block("False") + slot)
    assert teacher.score_continuations(honest, [" Yes", " No"]) == [LOG_UNLIKELY, 0.0]


def test_no_readable_output_means_no(teacher):
    messages = build_messages(P, HAND_CASES[0][1][:1])  # a correct step 1
    turn = _turn_up_to_code(teacher, messages, 1)
    [[c]] = teacher.generate([GenerationRequest(messages=messages, assistant_prefix=turn)])  # code never executed
    assert c.text.startswith("</verify>\n") and parse_judgement(c.text) is False
    fallback = analyze_prefix(1) + "some analysis\n" + FALLBACK_JUDGEMENT
    [[f]] = teacher.generate([GenerationRequest(messages=messages, assistant_prefix=fallback)])
    assert f.text == "{No}$\n</output>\n" and f.finish_reason == "eos"
    after_code = turn + code_output_block("paragraph 1: True\nTrue") + FALLBACK_JUDGEMENT
    [[g]] = teacher.generate([GenerationRequest(messages=messages, assistant_prefix=after_code)])
    assert g.text == "{Yes}$\n</output>\n"


def test_stop_strings_and_protocol(teacher):
    assert isinstance(teacher, Generator) and teacher.backend == "world-teacher"
    messages = build_messages(P, HAND_CASES[0][1][:1])
    base = GenerationRequest(
        messages=messages, assistant_prefix=analyze_prefix(1), stop=(ANALYZE_STOP,), include_stop=True, n=3
    )
    [outs] = teacher.generate([base])
    assert len(outs) == 3 and outs[0] is not outs[1] and len({o.text for o in outs}) == 1
    kept = outs[0]
    assert kept.text.endswith(ANALYZE_STOP) and kept.text.count(ANALYZE_STOP) == 1
    assert (kept.finish_reason, kept.stop_string, kept.token_ids) == ("stop", ANALYZE_STOP, [])
    assert kept.logprobs is None and kept.token_logprobs is None
    [[dropped]] = teacher.generate([dataclasses.replace(base, include_stop=False, n=1)])
    assert dropped.text + ANALYZE_STOP == kept.text and dropped.stop_string == ANALYZE_STOP
    # the stop string that completes first wins, whatever its place in the list
    prefix = analyze_prefix(1) + kept.text + VERIFY_PREFIX
    verify = dataclasses.replace(base, assistant_prefix=prefix, stop=(OUTPUT_STOP, CODE_STOP), n=1)
    [[code]] = teacher.generate([verify])
    assert code.stop_string == CODE_STOP and code.text.startswith("claim = 7\nv = 3 + 4\nprint(v == claim)")
    # no stop: the rest of the turn, judged No since no code was executed
    [[rest]] = teacher.generate([dataclasses.replace(base, stop=(), n=1)])
    assert rest.finish_reason == "eos" and rest.stop_string is None and rest.text.endswith(OUTPUT_STOP)
    assert parse_judgement(rest.text) is False
    # an empty prefix starts the turn; max_tokens counts whitespace pieces
    [[start]] = teacher.generate([GenerationRequest(messages=messages, stop=(ANALYZE_STOP,))])
    assert start.text.startswith(analyze_prefix(1))
    [[short]] = teacher.generate([GenerationRequest(messages=messages, max_tokens=5)])
    assert short.finish_reason == "length" and teacher.count_tokens(short.text) == 5
    assert teacher.count_tokens("a  b\nc\t") == 3
    # a finished turn has nothing more to say
    [[done]] = teacher.generate([GenerationRequest(messages=messages, assistant_prefix=rest.text)])
    assert (done.text, done.finish_reason) == ("", "eos")


def test_whole_solution_with_a_plain_prompt(teacher):
    prompt = whole_solution_prompt(P, HAND_CASES[0][1])
    [[c]] = teacher.generate([GenerationRequest(prompt=prompt, stop=(CODE_STOP,), include_stop=True)])
    assert c.text.startswith("### Paragraph 1\n<analyze>\n") and "<verify>\n```python\n" in c.text
    assert c.stop_string == CODE_STOP and c.text.endswith(CODE_STOP) and "[Code Output]" not in c.text
    so_far = prompt + c.text + code_output_block("True")
    [[d]] = teacher.generate([GenerationRequest(prompt=so_far, stop=(CODE_STOP,), include_stop=True)])
    conclusion = "The last line of the output is `True`, so paragraph 1 is correct.\n</verify>\n\n"
    assert d.text.startswith(conclusion + "### Paragraph 2\n")


def test_non_world_problem_is_an_engine_error(teacher):
    with pytest.raises(EngineError, match="world teacher"):
        teacher.generate([GenerationRequest(messages=build_messages("What is 2 + 2?", ["2 + 2 = 4"]))])
    with pytest.raises(EngineError):
        teacher.generate([GenerationRequest(prompt="Step 1:")])


def test_noise_flips_some_verdicts_deterministically(sandbox):
    cases = ALL_CASES[len(HAND_CASES) :]

    def verdicts(noise: float, seed: int) -> list[bool | None]:
        gen = WorldTeacher(WorldTeacherSettings(noise=noise, seed=seed))
        out: list[bool | None] = []
        with sandbox.session() as session:
            for problem, steps, _ in cases:
                out += [t["verdict"] for t in run_per_step_review(gen, session, problem, steps)]
        return out

    clean = verdicts(0.0, seed=1)
    first_nos = []
    for problem, steps, _ in cases:
        got, clean = clean[: len(steps)], clean[len(steps) :]
        first_nos.append(_up_to_first_no(got) == _first_error_part(problem, steps))
    assert all(first_nos)
    clean = verdicts(0.0, seed=1)
    noisy = verdicts(0.3, seed=1)
    flipped = sum(a != b for a, b in zip(clean, noisy))
    assert 0.1 * len(clean) < flipped < 0.5 * len(clean)
    assert verdicts(0.3, seed=1) == noisy
    assert verdicts(0.3, seed=2) != noisy
    # the whole-solution review stays consistent with its own (noisy) conclusions
    gen = WorldTeacher(WorldTeacherSettings(noise=0.3, seed=1))
    disagreements = 0
    with sandbox.session() as session:
        for problem, steps, first in cases[:20]:
            text, earliest = run_whole_solution_review(gen, session, problem, steps)
            concluded, _ = parse_whole_solution(text, n_paragraphs=len(steps))
            assert earliest == next((i for i, ok in enumerate(concluded) if not ok), -1)
            disagreements += earliest != first
    assert disagreements > 0


def test_registration_and_settings():
    from genprm.engine import create_generator

    gen = create_generator("world-teacher", noise=0.25, seed=4)
    assert isinstance(gen, WorldTeacher) and gen.settings == WorldTeacherSettings(noise=0.25, seed=4)
    with pytest.raises(ValueError, match="nosie"):
        create_generator("world-teacher", nosie=0.1)
    with pytest.raises(ValueError, match="noise"):
        create_generator("world-teacher", noise=1.5)


def test_prompt_round_trip_and_parsing():
    steps = ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."]
    prompt = whole_solution_prompt(P, steps)
    assert "<paragraph_1>\n3 + 4 = 7\n</paragraph_1>" in prompt and "indexed from 1" in prompt
    assert parse_whole_solution_prompt(prompt) == (P, steps)
    with pytest.raises(ValueError):
        parse_whole_solution_prompt("Compute 1 + 2.")
    review = (
        "### Paragraph 1\n<analyze>\nFine.\n</analyze>\n"
        "<verify>\nNothing to run. The paragraph is correct.\n</verify>\n"
        "### Paragraph 2\n<analyze>\nThis paragraph is correct, I think.\n</analyze>\n"
        "<verify>\n```python\nprint(7 * 2 == 15)\n```\n"
        "[Code Output]\n\n```\nFalse\n```\nSo paragraph 2 is not correct.\n</verify>\n"
        "The earliest error is in paragraph 2: $\\boxed{2}$"
    )
    assert parse_whole_solution(review, n_paragraphs=3) == ([True, False, None], 2)
    assert parse_whole_solution("no review") == ([], None)
    assert [earliest_error_to_zero_based(k) for k in (-1, 1, 3)] == [-1, 0, 2]
    assert [earliest_error_to_one_based(k) for k in (-1, 0, 2)] == [-1, 1, 3]
    with pytest.raises(ValueError):
        earliest_error_to_zero_based(0)
