"""Dataset loaders: named problem sets and ProcessBench, normalised into genprm records.

- :func:`load_problems` (registry :data:`LOADERS`): MATH, MATH-500, AIME24, AMC23, Minerva Math.
- :func:`load_processbench`: the four ProcessBench splits.
- :func:`decontaminate`: drop training problems that appear in evaluation sets.
"""

from genprm.data.boxed import last_boxed
from genprm.data.decontaminate import decontaminate, normalize_text
from genprm.data.loaders import answer_to_str, load_problems
from genprm.data.processbench import PROCESSBENCH_HUB_ID, PROCESSBENCH_SPLITS, load_processbench
from genprm.data.registry import LOADERS, DatasetSpec, UnknownDatasetError, get_spec

__all__ = [
    "LOADERS",
    "DatasetSpec",
    "UnknownDatasetError",
    "get_spec",
    "load_problems",
    "answer_to_str",
    "load_processbench",
    "PROCESSBENCH_HUB_ID",
    "PROCESSBENCH_SPLITS",
    "decontaminate",
    "normalize_text",
    "last_boxed",
]
