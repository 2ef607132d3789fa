"""The README's results block is the rendering of ``docs/results.md.in`` over ``metrics/*.json``."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def rr(repo, load_script):
    return load_script(repo / "bench" / "readme_results.py")


@pytest.fixture()
def copy(repo, tmp_path):
    """The README, the template and the metrics files in a temp folder."""
    shutil.copy2(repo / "README.md", tmp_path / "README.md")
    shutil.copy2(repo / "docs" / "results.md.in", tmp_path / "results.md.in")
    shutil.copytree(repo / "metrics", tmp_path / "metrics")
    return tmp_path


def _check(rr, root) -> int:
    return rr.main(["--readme", str(root / "README.md"), "--template", str(root / "results.md.in"),
                    "--metrics-dir", str(root / "metrics"), "--check"])


def test_repository_readme_matches_the_metrics(rr, repo):
    assert rr.main(["--check"]) == 0, "README results are stale: run `PYTHONPATH=src python bench/readme_results.py`"
    template = (repo / "docs" / "results.md.in").read_text()
    assert "{processbench:pass@1.average_f1:.1f}" in template and "{policy:eval.accuracy:.2f}" in template


def test_check_catches_a_changed_number_in_the_readme(rr, copy, caplog):
    text = (copy / "README.md").read_text()
    head, inside, tail = rr.split_readme(text)
    f1 = json.loads((copy / "metrics" / "processbench.json").read_text())["pass@1"]["average_f1"]
    have, wrong = f"**F1 {f1:.1f} at Pass@1**", f"**F1 {f1 + 1:.1f} at Pass@1**"
    assert have in inside
    (copy / "README.md").write_text(head + inside.replace(have, wrong) + tail)
    assert _check(rr, copy) == 1
    assert f"F1 {f1 + 1:.1f}" in caplog.text and f"F1 {f1:.1f}" in caplog.text  # the first difference, both sides


def test_check_catches_a_changed_metrics_file_and_render_repairs_it(rr, copy, caplog):
    path = copy / "metrics" / "best_of_n.json"
    data = json.loads(path.read_text())
    data["at_n_max"]["prm_min"] = 71.0
    path.write_text(json.dumps(data))
    assert _check(rr, copy) == 1 and "PRM-Min 71.0" in caplog.text
    args = ["--readme", str(copy / "README.md"), "--template", str(copy / "results.md.in"),
            "--metrics-dir", str(copy / "metrics")]
    assert rr.main(args) == 0
    assert "PRM-Min 71.0" in (copy / "README.md").read_text()
    assert _check(rr, copy) == 0
    outside = lambda t: (lambda h, _, a: h + a)(*rr.split_readme(t))  # noqa: E731
    assert outside((copy / "README.md").read_text()) == outside((rr.ROOT / "README.md").read_text())


def test_lookup_takes_names_with_dots_and_at_signs(rr):
    data = {"pass@1": {"average_f1": 87.4}, "quality": {"rpe@0.8": {"f1": 0.94}, "rpe@0": {"x": 1}},
            "accuracy": {"critic": [60.0, 85.0]}, "curves": {"majority": {"8": 84.0}}}
    assert rr.lookup(data, "pass@1.average_f1") == 87.4
    assert rr.lookup(data, "quality.rpe@0.8.f1") == 0.94
    assert rr.lookup(data, "quality.rpe@0.x") == 1  # the longest name that leads somewhere
    assert rr.lookup(data, "accuracy.critic.1") == 85.0 and rr.lookup(data, "curves.majority.8") == 84.0
    with pytest.raises(KeyError):
        rr.lookup(data, "quality.rpe@0.9.f1")


def test_render_formats_bands_and_errors(rr, tmp_path):
    (tmp_path / "policy.json").write_text(json.dumps({"eval": {"accuracy": 0.6213, "share": {"copy": 0.4262}},
                                                      "n": 1140}))
    (tmp_path / "bands.json").write_text(json.dumps({
        "runs": [{"seed": 0, "kernel_path": "native"}, {"seed": 1, "kernel_path": "native"}],
        "metrics": {"policy_accuracy": {"source": "policy:eval.accuracy", "min": 0.58, "median": 0.6, "max": 0.62,
                                        "values": [{"seed": 0, "kernel_path": "native", "value": 0.62},
                                                   {"seed": 1, "kernel_path": "native", "value": 0.58}]}}}))
    src = rr.Sources(tmp_path)
    out = rr.render("acc {policy:eval.accuracy:.2f} ({policy:eval.share.copy:.0%} copy), {policy:n:,} kept; "
                    "{bands:policy_accuracy.min}-{bands:policy_accuracy.max} over {bands:runs.1.seed} seeds; {{x}}", src)
    assert out == "acc 0.62 (43% copy), 1,140 kept; 0.58-0.62 over 1 seeds; {x}"
    with pytest.raises(rr.ResultsError, match="no key 'eval.recall'"):
        rr.render("{policy:eval.recall}", src)
    with pytest.raises(rr.ResultsError, match="missing.json does not exist"):
        rr.render("{missing:a}", src)
    with pytest.raises(rr.ResultsError, match="needs one"):
        rr.split_readme("no markers here")
