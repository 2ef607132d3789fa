"""Load a script of the project (a file under ``flows/``, ``bench/`` or ``stages/``) as a module, once.

Those folders hold scripts, not packages, so a flow that uses another script's functions loads it
by path. :func:`load_script` registers the module in ``sys.modules`` under a key made of the file's
stem and a hash of its resolved path: a second load of the same file returns the same module
(whichever flow loads it first), and two checkouts of the project never share one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_script"]


def load_script(path: str | Path) -> ModuleType:
    """The module of the Python file ``path``, executed on the first call only."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    key = f"genprm_script_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]  # a script that failed to load is not cached half-run
            raise
    return sys.modules[key]
