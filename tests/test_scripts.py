"""genprm.scripts.load_script: a script loaded by path once, shared by the flows that load it."""

from __future__ import annotations

import sys

import pytest

from genprm.scripts import load_script


def test_a_script_is_loaded_once_and_shared(tmp_path, repo):
    script = tmp_path / "counter.py"
    script.write_text("import itertools\nRUNS = itertools.count()\nFIRST = next(RUNS)\n")
    first = load_script(script)
    again = load_script(str(script))
    assert again is first and first.FIRST == 0 and next(first.RUNS) == 1  # executed once
    # the flows share one module per file: both flows' `sharded` is the same object
    bands = load_script(repo / "flows" / "bands.py")
    pipeline = load_script(repo / "flows" / "pipeline.py")
    assert bands.sharded is pipeline.sharded


def test_a_script_that_fails_is_not_cached(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise RuntimeError('broken at import')\n")
    with pytest.raises(RuntimeError, match="broken at import"):
        load_script(script)
    assert not any(k.startswith("genprm_script_broken_") for k in sys.modules)
    script.write_text("OK = True\n")
    assert load_script(script).OK
    with pytest.raises(FileNotFoundError, match="no script at"):
        load_script(tmp_path / "missing.py")
