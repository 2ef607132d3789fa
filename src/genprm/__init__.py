"""genprm: build, evaluate and serve generative process reward models (GenPRM).

The library knows nothing of DVC or Prefect: stages in ``stages/`` and flows in ``flows/``
call it with explicit paths and settings.
"""

__version__ = "0.1.0"
