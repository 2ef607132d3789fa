"""What a benchmark ran on, for its JSON: platform, CPU count and the accelerator, if any.

Imported by the bench scripts (``python bench/X.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import platform
from typing import Any


def describe() -> dict[str, Any]:
    """``{"platform", "cpus", "accelerator"}``; the accelerator is the CUDA device's name or ``None``."""
    accelerator = None
    try:
        import torch

        if torch.cuda.is_available():
            accelerator = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "accelerator": accelerator}
