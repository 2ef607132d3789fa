"""DVC stage ``register``: register the trained GenPRM in MLflow, and promote it only through the gates.

Reads the ``registry`` section of the params file (:class:`genprm.registry.RegisterConfig`), the
gate sections of the data lineage's metrics files (``gates``), the evaluation metrics its
thresholds and ``compare`` name, and the current champion's values from the registry. Logs the
model folder as a pyfunc verifier (:func:`genprm.serving.log_verifier_model`, with the
``registry.verifier`` engine and options) in a run tagged with the lineage (git commit, DVC
hashes of its deps, hashes of the files it read), registers a new version, and points alias
``champion`` at it only if every check passed; otherwise alias ``candidate``, with tags
``promotion=blocked`` and ``promotion.reasons``. A blocked promotion is an outcome, not an
error: the stage succeeds. A missing input (the model folder, a gate's or a threshold's metrics
file) is an error: the stage exits 1 with a message naming the file and the stage that writes it
(from ``dvc.yaml``), e.g. ``metrics/synthesis.json is missing: run the `synthesis` stage first``.
Writes::

    metrics/register.json   {model_name, version, alias, promoted, reasons, checks, previous_champion, values}

Run: ``python stages/register.py [--params params.yaml] [--model models/genprm]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from genprm.labeling.config import load_section
from genprm.logs import setup_logging
from genprm.records import write_json
from genprm.registry import (
    MissingInputError,
    RegisterConfig,
    champion_metrics,
    promotion_decision,
    read_metrics_files,
    register_model,
    require_inputs,
)
from lineage import lineage_tags, stage_paths  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.register")

_OPTION_KEYS = ("n_paths", "temperature", "top_p", "top_k", "seed", "max_tokens", "max_code_rounds",
                "code_timeout_s", "max_active")


def verifier_logger(cfg: RegisterConfig):
    """``log_model(model_dir=..., registered_model_name=...)`` for :func:`register_model`, from ``cfg.verifier``.

    The model folder is shipped with the logged model when the backend loads one (``model``
    setting) and the settings do not name one already; otherwise it is not logged.
    """
    from genprm.engine.registry import settings_model
    from genprm.serving import log_verifier_model

    v = cfg.verifier
    options = {**{k: getattr(v, k) for k in _OPTION_KEYS}, "threshold": cfg.threshold}
    ships_model = "model" in settings_model(v.engine.backend).model_fields and "model" not in v.engine.settings

    def log_model(*, model_dir: str | None, registered_model_name: str):
        return log_verifier_model(cfg.model_name, v.engine.backend, v.engine.settings,
                                  model_dir=model_dir if ships_model else None, options=options,
                                  registered_model_name=registered_model_name)

    return log_model


def output_producers(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, str]:
    """Every output path of the pipeline (outs, metrics, plots) -> the stage that writes it."""
    path = Path(dvc_yaml)
    if not path.is_file():
        return {}
    stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {out: name for name in stages for out in stage_paths(name, path)[1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/genprm", help="the trained model folder")
    ap.add_argument("--metrics", default="metrics/register.json")
    args = ap.parse_args(argv)
    setup_logging()
    cfg = load_section(args.params, "registry", RegisterConfig)
    try:
        require_inputs([args.model, *cfg.metric_files()], producers=output_producers())
    except MissingInputError as exc:
        log.error("cannot register %s: %s", args.model, exc)
        return 1
    files = read_metrics_files(cfg.metric_files())
    champion = champion_metrics(cfg.model_name, cfg.metric_specs())
    decision = promotion_decision({f: files.get(f) for f in cfg.gates}, files,
                                  champion.metrics if champion else None, cfg)
    inputs = [args.model, *(f for f in cfg.metric_files() if Path(f).exists())]
    result = register_model(args.model, cfg, decision, log_model=verifier_logger(cfg),
                            tags=lineage_tags("register", inputs), champion=champion)
    write_json(args.metrics, {**{k: v for k, v in result.to_dict().items() if k not in ("run_id", "model_uri")},
                              "checks": decision.checks, "previous_champion": champion.version if champion else None,
                              "values": decision.values})
    log.info("%s v%s -> %s", result.model_name, result.version, result.alias)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
