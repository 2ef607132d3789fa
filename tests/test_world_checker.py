"""The exact checker, on hand-built solutions of one problem: (3 + 4) * 2 - 5 = 9."""

import pytest

from genprm.world.checker import check_solution

P = "Compute (3 + 4) * 2 - 5."


@pytest.mark.parametrize(
    "steps, first, errors, final, correct",
    [
        (["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."], -1, [None, None, None], "9", True),
        # arithmetic result wrong in step 2, carried forward correctly afterwards
        (["3 + 4 = 7", "7 * 2 = 15", "15 - 5 = 10. The answer is 10."], 1, [None, "arithmetic", None], "10", False),
        # operand copied wrongly from the problem
        (["3 + 5 = 8", "8 * 2 = 16", "16 - 5 = 11. The answer is 11."], 0, ["copy", None, None], "11", False),
        # operator copied wrongly
        (["3 + 4 = 7", "7 + 2 = 9", "9 - 5 = 4. The answer is 4."], 1, [None, "copy", None], "4", False),
        # left operand not the previous result
        (["3 + 4 = 7", "8 * 2 = 16", "16 - 5 = 11. The answer is 11."], 1, [None, "copy", None], "11", False),
        # copy and arithmetic in one step: copy wins
        (["3 + 4 = 7", "7 * 3 = 20", "20 - 5 = 15. The answer is 15."], 1, [None, "copy", None], "15", False),
        # stated answer disagrees with the step's own result
        (["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 8."], 2, [None, None, "answer"], "8", False),
        # premature answer
        (["3 + 4 = 7. The answer is 7.", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."], 0,
         ["answer", None, None], "9", True),
        # stops early without an answer
        (["3 + 4 = 7", "7 * 2 = 14"], 1, [None, "answer"], None, False),
        # last step lacks the answer sentence
        (["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9"], 2, [None, None, "answer"], None, False),
        # an extra step after the last operation
        (["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9.", "9 + 0 = 9. The answer is 9."], 3,
         [None, None, None, "extra"], "9", True),
        # unparsable step; the next step cannot be compared with a previous result, only with the problem
        (["3 + 4 = 7", "seven times two is fourteen", "14 - 5 = 9. The answer is 9."], 1,
         [None, "format", None], "9", True),
        ([], 0, ["format"], None, False),
    ],
)
def test_check(steps, first, errors, final, correct):
    res = check_solution(P, steps)
    assert res.first_error == first
    assert res.step_errors == errors
    assert res.final_answer == final
    assert res.final_correct is correct


def test_text_input_and_labels():
    res = check_solution(P, "Step 1: 3 + 4 = 7\nStep 2: 7 * 2 = 15\nStep 3: 15 - 5 = 10. The answer is 10.")
    assert res.first_error == 1 and res.first_error_kind == "arithmetic"
    assert res.step_labels == [1, 0, 0]
    assert res.kinds == {"arithmetic": 1}
    assert res.answer == 9 and res.n_ops == 3


def test_right_answer_by_wrong_process_is_still_an_error():
    # two compensating copy errors reach the right answer: final correct, process wrong
    res = check_solution(P, ["3 + 4 = 7", "7 * 2 = 14", "14 - 6 = 8", "8 + 1 = 9. The answer is 9."])
    assert res.final_correct and res.first_error == 2
