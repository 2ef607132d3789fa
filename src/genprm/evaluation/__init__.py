"""Evaluations of process reward models: ProcessBench, Best-of-N, critic refinement, plots.

Submodules are imported on use (``from genprm.evaluation.processbench import ...``); importing
this package loads nothing heavy.
"""
