"""Parts 1-3 of the GenPRM method: rollouts, Monte-Carlo step values, step labels.

- :mod:`.rollout`     step-forced policy paths until each problem has both outcomes (part 1)
- :mod:`.montecarlo`  MC values of every step prefix, dynamic K, batched in waves (part 2)
- :mod:`.adaptive`    sequential MC sampling that stops once the RPE label is settled
- :mod:`.labels`      RPE / difference / hard labels from stored values, quality vs the checker (part 3)
- :mod:`.shards`      resumable, parallel work in shards and their merge
- :mod:`.gate`        great-expectations quality gate over the outputs
- :mod:`.runner`      the stage-level runs that ``stages/rollout.py``, ``montecarlo.py``, ``labels.py`` call
- :mod:`.config`      the ``rollout``, ``montecarlo`` and ``labels`` config sections

Importing this package loads no model and no great-expectations.
"""

from genprm.labeling.labels import apply_labels, difference_labels, hard_labels, quality_metrics, rpe_labels
from genprm.labeling.montecarlo import dynamic_k, estimate_values
from genprm.labeling.rollout import RolloutResult, run_rollouts

__all__ = [
    "apply_labels",
    "difference_labels",
    "hard_labels",
    "quality_metrics",
    "rpe_labels",
    "dynamic_k",
    "estimate_values",
    "RolloutResult",
    "run_rollouts",
]
