"""``genprm sandbox`` command: run files in one sandbox session, or print the isolation report.

Wiring (done by the main CLI)::

    from genprm.sandbox.cli import add_parser
    add_parser(subparsers)            # subparsers = parser.add_subparsers()
    args = parser.parse_args()
    sys.exit(args.func(args))

Commands::

    genprm sandbox run a.py b.py [--timeout 5] [--memory-mb 1024]
        one JSON line per file: {"file", "status", "stdout", "error", "duration_ms"}; exit 0
        when every file ran with status ok, 1 otherwise, 2 when the sandbox cannot start.
    genprm sandbox doctor [--min-isolation standard] [--disable-layer landlock]
        prints the isolation report; exit 1 when the minimum cannot be met.

Also runnable as ``python -m genprm.sandbox.cli ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .client import Sandbox, SandboxError, doctor
from .config import IsolationLevel, SandboxConfig

logger = logging.getLogger("genprm.sandbox.cli")

_LEVELS = [level.name.lower() for level in IsolationLevel if level is not IsolationLevel.NONE]


def _config(args: argparse.Namespace) -> SandboxConfig:
    kwargs = {"min_isolation": IsolationLevel.parse(args.min_isolation), "unsafe": bool(args.unsafe),
              "disabled_layers": tuple(args.disable_layer or ())}
    if getattr(args, "timeout", None) is not None:
        kwargs["timeout_s"] = float(args.timeout)
    if getattr(args, "memory_mb", None) is not None:
        kwargs["memory_mb"] = int(args.memory_mb)
    if getattr(args, "cmd", "") == "run":
        kwargs["pool_size"] = 0
    return SandboxConfig(**kwargs)


def cmd_run(args: argparse.Namespace) -> int:
    sources = []
    for path in args.files:
        with open(path, encoding="utf-8", errors="replace") as f:
            sources.append(f.read())
    all_ok = True
    try:
        with Sandbox(_config(args)) as sandbox, sandbox.session() as session:
            for path, code in zip(args.files, sources):
                result = session.run(code, args.timeout)
                all_ok &= result.ok
                line = {"file": path, **result.to_json_dict()}
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                sys.stdout.flush()
    except SandboxError as exc:
        logger.error("%s", exc)
        return 2
    return 0 if all_ok else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    config = _config(args)
    report = doctor(config)
    sys.stdout.write(report.format(config.min_isolation) + "\n")
    return 0 if (config.unsafe or report.meets(config.min_isolation)) else 1


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sandbox run`` and ``sandbox doctor`` on an ``add_subparsers()`` object."""
    parser = subparsers.add_parser("sandbox", help="run model-written Python in the isolated sandbox")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="cmd")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--min-isolation", choices=_LEVELS, default=SandboxConfig().min_isolation.name.lower(),
                       help="refuse to run below this isolation level")
        p.add_argument("--unsafe", action="store_true",
                       help="DEBUGGING ONLY: run without any isolation layer")
        p.add_argument("--disable-layer", action="append", choices=["netns", "uid", "landlock", "seccomp"],
                       help="do not apply this layer (debugging; the minimum level is still enforced)")

    run = sub.add_parser("run", help="run FILEs in order in one session; one JSON line per file")
    run.add_argument("files", nargs="+", metavar="FILE")
    run.add_argument("--timeout", type=float, default=None, help="seconds per file (default 5)")
    run.add_argument("--memory-mb", type=int, default=None, help="memory cap per session in MiB")
    common(run)
    run.set_defaults(func=cmd_run)

    doc = sub.add_parser("doctor", help="print the isolation report; non-zero exit if below minimum")
    common(doc)
    doc.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genprm")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
