"""Process reward models behind one interface: ``score(problems, solutions) -> per-step rewards``.

Kinds (made by :func:`create_prm`, validated names with a did-you-mean hint):

- ``genprm``: the staged, code-verified generative PRM with Maj@N (:mod:`genprm.verifier`);
- ``direct``: the direct generative PRM ablation, P(Yes) of ``\\boxed{Yes}`` per step
  (:mod:`genprm.prm.direct`);
- ``discriminative``: a Qwen2.5-Math-PRM style model, steps joined by a separator token and a
  2-class head at each separator (:mod:`genprm.prm.discriminative`).

Usage::

    prm = create_prm("genprm", generator=gen, sandbox=sandbox, options=VerifierOptions(n_paths=8))
    rewards = prm.score(["Compute 3 + 4."], [["3 + 4 = 7. The answer is 7."]])   # [[0.93]]
"""

from genprm.prm.base import PRM, check_inputs, create_prm, prm_kinds

__all__ = ["PRM", "check_inputs", "create_prm", "prm_kinds"]
