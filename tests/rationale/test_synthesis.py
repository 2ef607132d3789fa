"""Batched synthesis: same reviews as the per-solution loops, code really executed, budgets."""

from __future__ import annotations

import dataclasses

from genprm.conversation import FALLBACK_JUDGEMENT, VERIFY_PREFIX, analyze_prefix
from genprm.rationale.review import run_per_step_review, run_whole_solution_review
from genprm.rationale.synthesis import SynthesisLimits, synthesize
from genprm.sandbox.output import ExecResult


def _items(labelled):
    return [(s.id, s.problem, s.steps) for s, _ in labelled]


def test_per_step_batched_equals_per_solution_loop(teacher, sandbox, labelled):
    reviews = synthesize(teacher, sandbox.session, _items(labelled), SynthesisLimits(fmt="per_step"))
    assert [r.solution_id for r in reviews] == [s.id for s, _ in labelled]
    for (sol, values), review in zip(labelled, reviews):
        with sandbox.session() as session:
            reference = run_per_step_review(teacher, session, sol.problem, sol.steps)
        assert [t.text for t in review.turns] == [x["text"] for x in reference]
        assert [t.code_rounds for t in review.turns] == [x["code_rounds"] for x in reference]
        verdicts = [x["verdict"] for x in reference]
        # the world teacher is exact: verdicts equal the closed RPE labels
        assert [int(v) for v in verdicts] == values.labels["rpe"]
        assert not any(t.fallback for t in review.turns)


def test_whole_solution_batched_equals_per_solution_loop(teacher, sandbox, labelled):
    reviews = synthesize(teacher, sandbox.session, _items(labelled), SynthesisLimits(fmt="whole_solution"))
    for (sol, values), review in zip(labelled, reviews):
        with sandbox.session() as session:
            text, first_error = run_whole_solution_review(teacher, session, sol.problem, sol.steps)
        assert review.text == text
        assert first_error == (values.labels["rpe"].index(0) if 0 in values.labels["rpe"] else -1)
        assert review.code_rounds == len(sol.steps)


def test_window_smaller_than_batch_gives_the_same_reviews(teacher, sandbox, labelled):
    big = synthesize(teacher, sandbox.session, _items(labelled), SynthesisLimits(max_active=64))
    stats: dict = {}
    small = synthesize(teacher, sandbox.session, _items(labelled), SynthesisLimits(max_active=3, exec_workers=1),
                       stats=stats)
    assert [r.text for r in big] == [r.text for r in small]
    assert stats["code_blocks"] == sum(len(s.steps) for s, _ in labelled)
    assert stats["rounds"] > 4  # several waves


class _Doctored:
    """A real sandbox session whose printed ``True`` lines read ``False``."""

    def __init__(self, session) -> None:
        self.session, self.runs = session, 0

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        self.runs += 1
        result = self.session.run(code, timeout)
        return dataclasses.replace(result, stdout=result.stdout.replace("True", "False"))

    def close(self) -> None:
        self.session.close()


def test_code_really_executes_a_doctored_executor_changes_verdicts(teacher, sandbox, labelled):
    opened: list[_Doctored] = []

    def open_session():
        opened.append(_Doctored(sandbox.session()))
        return opened[-1]

    reviews = synthesize(teacher, open_session, _items(labelled), SynthesisLimits())
    assert len(opened) == len(labelled)  # one session per solution, reused across its steps
    assert [d.runs for d in opened] == [len(s.steps) for s, _ in labelled]
    for review in reviews:
        assert all("\\boxed{No}" in t.text for t in review.turns)
        assert all("False\n```\n" in t.text for t in review.turns)


def test_namespace_persists_across_a_solutions_steps(sandbox):
    from genprm.rationale.synthesis import _block_for

    with sandbox.session() as session:
        assert "[Code Output]" in _block_for(session, "```python\nx = 41\n```\n", None)
        assert _block_for(session, "```python\nprint(x + 1)\n```\n", None) == "[Code Output]\n\n```\n42\n```\n"


def test_code_round_cap_falls_back_to_the_analysis(teacher, sandbox, labelled):
    reviews = synthesize(teacher, sandbox.session, _items(labelled[:2]), SynthesisLimits(max_code_rounds=0))
    for review in reviews:
        for t, turn in enumerate(review.turns, start=1):
            assert turn.fallback and turn.fallback_reason == "code_rounds"
            assert turn.text.startswith(analyze_prefix(t))
            assert VERIFY_PREFIX not in turn.text and "[Code Output]" not in turn.text
            # the teacher never says Yes without a check that passed
            assert turn.text.endswith("</analyze>\n" + FALLBACK_JUDGEMENT + "{No}$\n</output>\n")
            assert turn.segments[-2].kind == "prefix" and turn.segments[-2].text == FALLBACK_JUDGEMENT
        assert review.budget_exhausted


def test_token_cap_falls_back(teacher, sandbox, labelled):
    items = _items(labelled[:1])
    [full] = synthesize(teacher, sandbox.session, items, SynthesisLimits())
    analysis_tokens = teacher.count_tokens(full.turns[0].segments[1].text)
    # too few tokens for the analysis: the cut analysis is kept, a newline joins the judgement
    [review] = synthesize(teacher, sandbox.session, items, SynthesisLimits(max_tokens_per_step=5))
    assert all(t.fallback and t.fallback_reason == "analyze_unfinished" for t in review.turns)
    assert review.turns[0].segments[-3].text == "\n" and review.turns[0].tokens == 5
    # enough for the analysis of step 1, not for its code: the verify stage is cut
    [review] = synthesize(teacher, sandbox.session, items, SynthesisLimits(max_tokens_per_step=analysis_tokens + 3))
    first = review.turns[0]
    assert first.fallback and first.fallback_reason == "verify_unfinished"
    assert first.text == full.turns[0].segments[0].text + full.turns[0].segments[1].text + FALLBACK_JUDGEMENT + "{No}$\n</output>\n"
    for turn in review.turns:
        assert turn.text.endswith("</output>\n") and FALLBACK_JUDGEMENT in turn.text


def test_wall_time_cap_falls_back(teacher, sandbox, labelled):
    [review] = synthesize(teacher, sandbox.session, _items(labelled[:1]), SynthesisLimits(step_timeout_s=1e-9))
    assert all(t.fallback and t.fallback_reason == "time" for t in review.turns)


def test_whole_solution_round_cap_ends_the_review(teacher, sandbox, labelled):
    [review] = synthesize(teacher, sandbox.session, _items(labelled[:1]),
                          SynthesisLimits(fmt="whole_solution", max_code_rounds=0))
    assert review.budget_exhausted and review.code_rounds == 0
    assert review.text.endswith("```\n") and "\\boxed{" not in review.text


def test_analysis_prompt_ends_before_the_prefix_space_and_turns_read_the_protocol(
        teacher, sandbox, labelled, recording):
    """Both paths send ``prompt_prefix(analyze_prefix(t))`` (no lone trailing space token) and the turn
    text starts with the whole prefix, the space once; the SFT prefix segment covers the whole prefix."""
    batched = recording(teacher)
    reviews = synthesize(batched, sandbox.session, _items(labelled[:4]), SynthesisLimits(fmt="per_step"))
    with sandbox.session() as session:
        sol = labelled[0][0]
        loop_rec = recording(teacher)
        loop = run_per_step_review(loop_rec, session, sol.problem, sol.steps)
    for rec in (batched, loop_rec):
        firsts = [r.assistant_prefix for r in rec.requests if "</analyze>" not in r.assistant_prefix]
        assert firsts and all(p.endswith("step by step:") for p in firsts), firsts[:2]
    for review in reviews:
        for t, turn in enumerate(review.turns, start=1):
            assert turn.text.startswith(analyze_prefix(t)) and not turn.text.startswith(analyze_prefix(t) + " ")
            assert turn.segments[0].text == analyze_prefix(t) and turn.segments[0].kind == "prefix"
    assert [x["text"] for x in loop] == [t.text for t in reviews[0].turns]


def test_logits_fallback_closes_a_cut_analysis_and_reads_the_judgement(teacher, sandbox, labelled):
    """fallback_judgement='logits': a well-formed turn whose judgement is the teacher's likelier one."""
    from genprm.rationale.parsing import check_turn

    items = _items(labelled[:2])
    scored = []

    class _Spy:
        backend = teacher.backend

        def generate(self, requests):
            return teacher.generate(requests)

        def score_continuations(self, prompt, candidates):
            scored.append(prompt)
            return teacher.score_continuations(prompt, candidates)

        def count_tokens(self, text):
            return teacher.count_tokens(text)

    cut = SynthesisLimits(max_tokens_per_step=5)
    generated = synthesize(teacher, sandbox.session, items, cut)
    forced = synthesize(_Spy(), sandbox.session, items, dataclasses.replace(cut, fallback_judgement="logits"))
    turns = [t for r in forced for t in r.turns]
    assert len(scored) == len(turns) and all(t.forced and t.fallback for t in turns)
    assert not any(t.forced for r in generated for t in r.turns)
    for turn in turns:
        analysis_end = turn.text.index("</analyze>\n")
        assert turn.text[analysis_end:].startswith("</analyze>\n" + FALLBACK_JUDGEMENT)
        assert check_turn(turn.text) is False  # parses; the rule teacher read no check output: No
        assert turn.segments[-1].kind == "gen" and turn.segments[-1].text == "{No}$\n</output>\n"
    # the generated fallback keeps a cut analysis without its closing tag: not a usable turn
    cut_turns = [t for r in generated for t in r.turns if "</analyze>" not in t.text]
    assert cut_turns and all(t.fallback_reason == "analyze_unfinished" for t in cut_turns)


def test_logits_fallback_after_code_rounds_keeps_later_steps_going(teacher, sandbox, labelled):
    items = _items(labelled[:3])
    limits = SynthesisLimits(max_code_rounds=0, fallback_judgement="logits", max_active=2)
    reviews = synthesize(teacher, sandbox.session, items, limits)
    assert [r.solution_id for r in reviews] == [sid for sid, _, _ in items]
    for review, (_, _, steps) in zip(reviews, items):
        assert len(review.turns) == len(steps)
        assert all(t.forced and t.fallback_reason == "code_rounds" for t in review.turns)
