"""The embedded arithmetic world: problems that can be checked exactly, and their checker.

It lets every stage of the pipeline run offline on a small CPU and still mean something.
"""

from genprm.world.checker import ERROR_KINDS, CheckResult, check_solution
from genprm.world.problems import Chain, WorldConfig, WorldFormatError, generate_problems, parse_problem, reference_steps

__all__ = [
    "ERROR_KINDS",
    "CheckResult",
    "check_solution",
    "Chain",
    "WorldConfig",
    "WorldFormatError",
    "generate_problems",
    "parse_problem",
    "reference_steps",
]
