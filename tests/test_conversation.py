"""Stage prompts of the GenPRM protocol: the trailing space of a forced prefix is generated, not prompted."""

from __future__ import annotations

from genprm.conversation import VERIFY_PREFIX, analyze_prefix, join_generated, prompt_prefix


def test_prompt_prefix_drops_only_trailing_spaces():
    assert prompt_prefix(analyze_prefix(3)) == "<analyze>\nLet's analyze the Paragraph 3 step by step:"
    assert prompt_prefix(VERIFY_PREFIX) == VERIFY_PREFIX  # ends in a newline: unchanged
    assert prompt_prefix("") == ""


def test_join_generated_restores_the_protocol_text():
    prefix = analyze_prefix(2)
    # the model generated the space with its first word: no doubled space
    assert join_generated(prefix, " Paragraph 2 claims 3 + 4 = 7.") == prefix + "Paragraph 2 claims 3 + 4 = 7."
    # a continuation without the space still follows the full prefix
    assert join_generated(prefix, "Paragraph 2") == prefix + "Paragraph 2"
    assert join_generated(prefix, "") == prefix
    assert join_generated(VERIFY_PREFIX, "print(1)") == VERIFY_PREFIX + "print(1)"
