"""Rationale synthesis: teacher prompts and the staged review loops that execute their code.

- :mod:`genprm.rationale.prompts`: the paper's whole-solution review prompt and its parsers;
- :mod:`genprm.rationale.review`: per-step (GenPRM conversation) and whole-solution review loops.
"""

from genprm.rationale.prompts import (
    earliest_error_to_one_based,
    earliest_error_to_zero_based,
    parse_whole_solution,
    parse_whole_solution_prompt,
    whole_solution_prompt,
)
from genprm.rationale.review import run_per_step_review, run_whole_solution_review

__all__ = [
    "earliest_error_to_one_based",
    "earliest_error_to_zero_based",
    "parse_whole_solution",
    "parse_whole_solution_prompt",
    "whole_solution_prompt",
    "run_per_step_review",
    "run_whole_solution_review",
]
