"""How Best-of-N's PRM selections depend on ``best_of_n.tie_margin``, replayed on scored solutions.

Reads the ``best_of_n`` stage's scored solutions (``data/eval/best_of_n.jsonl``: step rewards in
each solution's metadata) and recomputes the curves at N_max for several tie margins with the
stage's draws and seed, so the margin's effect is measured on the very same rewards. Also counts
how often, among a problem's candidates, a wrong answer scores within the margin of the best::

    python bench/best_of_n_ties.py --margins 0 0.001 0.01 0.05 --out bench/measured/best_of_n_ties.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genprm.evaluation.best_of_n import Candidate, aggregate, best_of_n_curves  # noqa: E402
from genprm.params import load_params  # noqa: E402
from genprm.records import Solution, read_records  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--solutions", default=str(ROOT / "data/eval/best_of_n.jsonl"))
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.001, 0.01, 0.05])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = load_params(args.params).best_of_n
    by_problem: dict[str, list[Candidate]] = {}
    for s in read_records(args.solutions, Solution):
        by_problem.setdefault(s.problem_id, []).append(
            Candidate(answer=s.final_answer, correct=bool(s.correct), step_rewards=s.metadata["step_rewards"]))
    problems = list(by_problem.values())
    top = str(cfg.n_max)
    rows = []
    for margin in args.margins:
        curves = best_of_n_curves(problems, n_max=cfg.n_max, draws=cfg.draws, seed=cfg.seed,
                                  vote_score=cfg.vote_score, tie_margin=margin)
        # problems where a wrong candidate's PRM-Min lies within the margin of the best (all candidates)
        near_wrong = 0
        for cands in problems:
            scores = [aggregate(c.step_rewards, "min") for c in cands]
            best = max(scores)
            near_wrong += any(not c.correct and sc >= best - margin for c, sc in zip(cands, scores))
        rows.append({"tie_margin": margin, "at_n_max": {m: round(c[top], 2) for m, c in curves.items()},
                     "problems_with_a_wrong_candidate_tied_at_the_top": near_wrong})
        print(f"margin {margin:<6} " + " ".join(f"{m} {c[top]:.1f}" for m, c in curves.items()) +
              f" | wrong tied at top: {near_wrong}/{len(problems)}")
    out = {"machine": describe(), "solutions": args.solutions, "n_max": cfg.n_max, "draws": cfg.draws,
           "problems": len(problems), "margins": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
