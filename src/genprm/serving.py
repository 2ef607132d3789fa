"""Serving the GenPRM verifier with MLflow: a pyfunc model, its schema, and how to log it.

:class:`GenPRMServer` is an ``mlflow.pyfunc.PythonModel``. Its model config holds the engine
(backend name and settings), the verifier options (``n_paths``, ``max_tokens``, ``threshold``,
``seed``, ...), sandbox overrides and the request limits; a model folder the engine needs
(e.g. the GenPRM checkpoint of a ``vllm`` or ``hf`` backend) is an artifact of the logged model
and its local path is filled into the settings at load time. ``load_context`` builds ONE
generator and ONE started :class:`~genprm.sandbox.Sandbox` that live as long as the server;
``predict`` verifies all records of a request in one batched
:meth:`~genprm.verifier.GenPRMVerifier.verify` call.

Request records: ``{"problem": str, "steps": [str, ...]}``. Answer records, one per input:
``rewards`` (one float per step, the mean P(Yes) over paths), ``first_error`` (0-based index of
the first step whose reward is below ``threshold``, -1 if none), ``rationales`` (path 0's
whole assistant turn per step: analysis, code, ``[Code Output]``, judgement) and ``forced`` (per
step, the share of paths whose judgement was forced: read from the model's logits after the
forced judgement prefix because no judgement could be parsed; never a 0.5 stand-in).

The signature (:func:`verifier_signature`) makes MLflow's scoring server reject records that
lack a column or whose ``steps`` is not an array of strings; :func:`parse_records` then checks
what a schema cannot (empty problem, empty ``steps``, too many records or steps, overly long
text) and ``predict`` raises ``MlflowException(INVALID_PARAMETER_VALUE)`` naming the record and
the field, which the server answers with HTTP 400. Log, register and serve::

    from genprm.serving import log_verifier_model
    info = log_verifier_model("genprm", "vllm", {"dtype": "float32"}, model_dir="models/genprm",
                              options={"n_paths": 8, "max_tokens": 1024},
                              registered_model_name="genprm", alias="champion")

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db \\
        mlflow models serve -m models:/genprm@champion --env-manager local -h 127.0.0.1 -p 5001
    curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
        -d '{"dataframe_records": [{"problem": "Compute 3 + 4.", "steps": ["3 + 4 = 7. The answer is 7."]}]}'

Concurrency: the scoring server runs each request's ``predict`` in a thread; requests take turns
on the one engine (a lock), since in-process engines (vLLM, transformers) are not thread-safe.
Throughput comes from batching the records of a request (one engine call per stage for all of
them). Seeds follow the verifier's (seed, record index, path, step) scheme, so a sampling
backend gives the same answer for the same request. Use one uvicorn worker (the default) per
accelerator: every worker loads its own engine.

:class:`ModelServer` runs ``mlflow models serve`` as a subprocess (its own process group, ready
on ``/ping``, stopped by PID) for tests and ``bench/serving.py``.

The served environment must be able to import ``genprm`` (``--env-manager local`` in an
environment where it is installed); the logged pip requirements name ``genprm`` and mlflow only,
and are not inferred (inference would import the whole environment).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from genprm.verifier import VerifierOptions

__all__ = [
    "ServingLimits",
    "GenPRMServer",
    "verifier_signature",
    "parse_records",
    "serving_config",
    "log_verifier_model",
    "ModelServer",
    "free_port",
    "group_members",
    "INPUT_FIELDS",
    "OUTPUT_FIELDS",
]

log = logging.getLogger(__name__)

INPUT_FIELDS = ("problem", "steps")
OUTPUT_FIELDS = ("rewards", "first_error", "rationales", "forced")


@dataclass(frozen=True)
class ServingLimits:
    """What one request may contain; beyond it the request is refused (HTTP 400)."""

    max_records: int = 64
    max_steps: int = 64
    max_step_chars: int = 4000
    max_problem_chars: int = 8000

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"serving limit {f.name} must be >= 1, got {getattr(self, f.name)}")


def verifier_signature() -> ModelSignature:
    """Input ``problem: string, steps: array<string>``; output ``rewards, first_error, rationales, forced``."""
    inputs = Schema([ColSpec(DataType.string, "problem"), ColSpec(Array(DataType.string), "steps")])
    outputs = Schema(
        [
            ColSpec(Array(DataType.double), "rewards"),
            ColSpec(DataType.long, "first_error"),
            ColSpec(Array(DataType.string), "rationales"),
            ColSpec(Array(DataType.double), "forced"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


# ----------------------------------------------------------------------------------- requests
def _as_records(model_input: Any) -> list[Mapping[str, Any]]:
    if isinstance(model_input, pd.DataFrame):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, Mapping):
        return [model_input]
    if isinstance(model_input, Sequence) and not isinstance(model_input, (str, bytes)):
        return list(model_input)
    raise ValueError(f"expected records with fields {list(INPUT_FIELDS)}, got {type(model_input).__name__}")


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def parse_records(model_input: Any, limits: ServingLimits | None = None) -> list[tuple[str, list[str]]]:
    """``(problem, steps)`` per record of ``model_input`` (a DataFrame, records or one record).

    Raises ``ValueError`` naming the record index and the field for anything the verifier
    cannot or should not take: a missing or empty problem, ``steps`` that is not a non-empty
    list of strings, more records or steps than ``limits`` allow, an overly long problem or step.
    """
    import numpy as np

    limits = limits or ServingLimits()
    records = _as_records(model_input)
    if not records:
        raise ValueError("the request has no records")
    if len(records) > limits.max_records:
        raise ValueError(f"the request has {len(records)} records; at most {limits.max_records} are allowed")
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValueError(f"record {i}: expected an object with fields {list(INPUT_FIELDS)}, got {_describe(rec)}")
        problem = rec.get("problem")
        if not isinstance(problem, str):
            raise ValueError(f"record {i}: field 'problem' must be a string, got {_describe(problem)}")
        if not problem.strip():
            raise ValueError(f"record {i}: field 'problem' is empty")
        if len(problem) > limits.max_problem_chars:
            raise ValueError(f"record {i}: field 'problem' has {len(problem)} characters; at most {limits.max_problem_chars} are allowed")
        steps = rec.get("steps")
        if isinstance(steps, np.ndarray):
            steps = steps.tolist()
        if not isinstance(steps, (list, tuple)):
            raise ValueError(f"record {i}: field 'steps' must be a list of strings, got {_describe(steps)}")
        if not steps:
            raise ValueError(f"record {i}: field 'steps' is empty; a solution needs at least one step")
        if len(steps) > limits.max_steps:
            raise ValueError(f"record {i}: field 'steps' has {len(steps)} steps; at most {limits.max_steps} are allowed")
        for t, step in enumerate(steps):
            if not isinstance(step, str):
                raise ValueError(f"record {i}: field 'steps[{t}]' must be a string, got {_describe(step)}")
            if len(step) > limits.max_step_chars:
                raise ValueError(f"record {i}: field 'steps[{t}]' has {len(step)} characters; at most {limits.max_step_chars} are allowed")
        out.append((problem, list(steps)))
    return out


# ------------------------------------------------------------------------------ the pyfunc model
def serving_config(
    engine_backend: str,
    engine_settings: Mapping[str, Any] | None = None,
    *,
    artifact_settings: Sequence[str] = (),
    options: VerifierOptions | Mapping[str, Any] | None = None,
    sandbox: Mapping[str, Any] | None = None,
    limits: ServingLimits | Mapping[str, Any] | None = None,
    code_workers: int = 16,
) -> dict[str, Any]:
    """The model config a :class:`GenPRMServer` loads from (plain YAML-able values), validated.

    ``artifact_settings`` names engine settings whose value is a folder shipped with the model
    (``"model"`` for the ``vllm``/``hf`` backends); they are left out here and filled in from
    ``context.artifacts`` at load time.
    """
    from genprm.engine.registry import settings_model
    from genprm.sandbox import SandboxConfig

    settings = dict(engine_settings or {})
    cls = settings_model(engine_backend)  # unknown backend: ValueError listing the known ones
    unknown = [k for k in [*settings, *artifact_settings] if k not in cls.model_fields]
    if unknown:
        raise ValueError(f"unknown settings {unknown} for generation backend {engine_backend!r}; known: {sorted(cls.model_fields)}")
    clash = sorted(set(settings) & set(artifact_settings))
    if clash:
        raise ValueError(f"engine settings {clash} are shipped as model artifacts; do not also give them a value")
    opts = options if isinstance(options, VerifierOptions) else VerifierOptions(**dict(options or {}))
    lims = limits if isinstance(limits, ServingLimits) else ServingLimits(**dict(limits or {}))
    sandbox = {k: (v.name if hasattr(v, "name") else v) for k, v in dict(sandbox or {}).items()}
    SandboxConfig(**sandbox)  # validate now, not in the server
    if code_workers < 1:
        raise ValueError(f"code_workers must be >= 1, got {code_workers}")
    return {
        "engine": {"backend": engine_backend, "settings": settings, "artifact_settings": list(artifact_settings)},
        "verifier": asdict(opts),
        "sandbox": sandbox,
        "limits": asdict(lims),
        "code_workers": code_workers,
    }


class GenPRMServer(mlflow.pyfunc.PythonModel):
    """The GenPRM verifier as an MLflow pyfunc model (see the module docstring).

    Holds nothing when pickled; :meth:`load_context` builds the engine and the sandbox.
    """

    def __init__(self) -> None:
        self._verifier = None
        self._generator = None
        self._sandbox = None
        self._lock = threading.Lock()
        self.options: VerifierOptions | None = None
        self.limits: ServingLimits | None = None

    def __getstate__(self) -> dict[str, Any]:  # only configuration travels in the pickle
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def load_context(self, context: Any) -> None:
        from genprm.engine import create_generator
        from genprm.sandbox import Sandbox, SandboxConfig
        from genprm.verifier import GenPRMVerifier

        cfg = context.model_config or {}
        if "engine" not in cfg:
            raise MlflowException("the GenPRM model config has no 'engine' section; log it with log_verifier_model")
        engine = cfg["engine"]
        settings = dict(engine.get("settings") or {})
        for key in engine.get("artifact_settings") or []:
            settings[key] = context.artifacts[key]
        self.options = VerifierOptions(**cfg.get("verifier", {}))
        self.limits = ServingLimits(**cfg.get("limits", {}))
        t0 = time.perf_counter()
        self._generator = create_generator(engine["backend"], **settings)
        try:
            self._sandbox = Sandbox(SandboxConfig(**cfg.get("sandbox", {}))).start()
        except Exception:
            self._generator.close()
            raise
        self._verifier = GenPRMVerifier(self._generator, self._sandbox, self.options, code_workers=int(cfg.get("code_workers", 16)))
        atexit.register(self.close)
        log.info("GenPRM server ready in %.1f s: backend %s, %d path(s), sandbox at %s",
                 time.perf_counter() - t0, engine["backend"], self.options.n_paths, self._sandbox.report.level.name)

    def close(self) -> None:
        """Stop the sandbox and the engine (also run at interpreter exit)."""
        with self._lock:
            sandbox, generator = self._sandbox, self._generator
            self._verifier = self._sandbox = self._generator = None
        if sandbox is not None:
            sandbox.close()
        if generator is not None:
            generator.close()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One answer record per input record (see the module docstring)."""
        try:
            solutions = parse_records(model_input, self.limits)
        except ValueError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        t0 = time.perf_counter()
        with self._lock:
            if self._verifier is None:
                raise MlflowException("the GenPRM server is not loaded (or was closed)")
            results = self._verifier.verify(solutions, show_progress=False)
        threshold = self.options.threshold
        rows = [
            {
                "rewards": [float(r) for r in res.rewards],
                "first_error": int(res.first_error(threshold)),
                "rationales": [step.paths[0].text for step in res.steps],
                "forced": [float(f) for f in res.forced_shares],
            }
            for res in results
        ]
        log.debug("verified %d record(s), %d step(s) in %.3f s", len(rows), sum(len(s) for _, s in solutions), time.perf_counter() - t0)
        return pd.DataFrame(rows, columns=list(OUTPUT_FIELDS))


# ------------------------------------------------------------------------------------- logging
def log_verifier_model(
    name: str,
    engine_backend: str,
    engine_settings: Mapping[str, Any] | None = None,
    model_dir: str | os.PathLike | None = None,
    *,
    options: VerifierOptions | Mapping[str, Any] | None = None,
    sandbox: Mapping[str, Any] | None = None,
    limits: ServingLimits | Mapping[str, Any] | None = None,
    code_workers: int = 16,
    artifact_settings: Mapping[str, str | os.PathLike] | None = None,
    registered_model_name: str | None = None,
    alias: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    input_example: Any = None,
    run_name: str | None = None,
    experiment: str | None = None,
    artifact_location: str | None = None,
) -> Any:
    """Log (and optionally register) the GenPRM verifier as a pyfunc model; returns ``ModelInfo``.

    ``model_dir`` is a local model folder shipped with the model as the engine's ``model``
    setting (``vllm``/``hf``); ``artifact_settings`` ships other folders the same way (e.g.
    ``{"tokenizer": "tok/"}`` for the ``openai`` backend). ``registered_model_name`` registers a
    new version; ``alias`` (e.g. ``"champion"``) then points at it. Logs into the active run, or
    into a new run of :func:`genprm.tracking.start_run` (``experiment``,
    ``artifact_location``: where a new experiment keeps artifacts). ``input_example``, when given, is saved
    beside the model and validated by MLflow, which loads the model once (costly for real engines).
    """
    from genprm import __version__
    from genprm import tracking
    from genprm.engine.registry import validate_settings

    if alias is not None and registered_model_name is None:
        raise ValueError("an alias needs registered_model_name")
    shipped = {k: Path(v) for k, v in dict(artifact_settings or {}).items()}
    if model_dir is not None:
        if "model" in shipped:
            raise ValueError("give the model folder either as model_dir or as artifact_settings['model'], not both")
        shipped["model"] = Path(model_dir)
    for key, path in shipped.items():
        if not path.exists():
            raise FileNotFoundError(f"engine setting {key!r}: {path} does not exist")
    config = serving_config(engine_backend, engine_settings, artifact_settings=sorted(shipped), options=options,
                            sandbox=sandbox, limits=limits, code_workers=code_workers)
    validate_settings(engine_backend, {**config["engine"]["settings"], **{k: str(p) for k, p in shipped.items()}})
    requirements = list(pip_requirements) if pip_requirements is not None else [f"mlflow=={mlflow.__version__}", f"genprm=={__version__}"]

    def _log() -> Any:
        with warnings.catch_warnings():  # the signature is given; an example is optional here
            warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
            return _log_model()

    def _log_model() -> Any:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=GenPRMServer(),
            artifacts={k: str(p.resolve()) for k, p in shipped.items()} or None,
            model_config=config,
            signature=verifier_signature(),
            input_example=input_example,
            pip_requirements=requirements,
            registered_model_name=registered_model_name,
        )

    if mlflow.active_run() is not None:
        info = _log()
    else:
        with tracking.start_run(run_name or f"serving-{name}", experiment=experiment or tracking.DEFAULT_EXPERIMENT,
                                artifacts=artifact_location, tags={"stage": "serving"}):
            info = _log()
    log.info("logged GenPRM verifier model %s (%s backend)", info.model_uri, engine_backend)
    if alias is not None:
        version = info.registered_model_version
        mlflow.MlflowClient().set_registered_model_alias(registered_model_name, alias, str(version))
        log.info("models:/%s@%s -> version %s", registered_model_name, alias, version)
    return info


# ------------------------------------------------------------------------------ a local server
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on (just now)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields_ = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields_[2]) == pgid and fields_[0] not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


class ModelServer:
    """``mlflow models serve`` of ``model_uri`` as a subprocess in its own process group.

    ``start()`` launches it (``--env-manager local``, this interpreter's environment) and waits
    until ``/ping`` answers; ``stop()`` ends the process group by its PID (SIGTERM, then SIGKILL).
    The model's sandbox server leaves with it (it exits when its control socket closes)::

        with ModelServer("models:/genprm@champion", tracking_uri="sqlite:///mlflow.db") as server:
            httpx.post(server.url + "/invocations", json={"dataframe_records": [...]})
    """

    def __init__(
        self,
        model_uri: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tracking_uri: str | None = None,
        workers: int = 1,
        log_path: str | os.PathLike | None = None,
        start_timeout_s: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_uri, self.host = model_uri, host
        self.port = port or free_port(host)
        self.tracking_uri, self.workers = tracking_uri, workers
        self.log_path = Path(log_path) if log_path else None
        self.start_timeout_s = start_timeout_s
        self.extra_env = dict(env or {})
        self.proc: Any = None
        self.ready_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _log_tail(self, n: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-n:]

    def start(self) -> "ModelServer":
        import subprocess
        import sys

        import httpx

        env = dict(os.environ, **self.extra_env)
        # uvicorn is started by name: put this interpreter's scripts first on PATH
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.model_uri, "--env-manager", "local",
               "-h", self.host, "-p", str(self.port), "-w", str(self.workers)]
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            if self.log_path:
                out.close()
        log.info("mlflow models serve %s on %s (pid %d)", self.model_uri, self.url, self.proc.pid)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mlflow models serve exited with {self.proc.returncode}:\n{self._log_tail()}")
                try:
                    if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - t0 > self.start_timeout_s:
                    raise RuntimeError(f"mlflow models serve not ready after {self.start_timeout_s:.0f} s:\n{self._log_tail()}")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        self.ready_s = round(time.monotonic() - t0, 2)
        log.info("model server ready after %.1f s", self.ready_s)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the server's process group: SIGTERM, and SIGKILL what is left after ``timeout_s``."""
        import signal
        import subprocess

        proc, self.proc = self.proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the CLI leads a group holding the uvicorn it started
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pgid) or proc.poll() is None:
            log.warning("model server group %d ignored SIGTERM for %.0f s; killing it", pgid, timeout_s)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def __enter__(self) -> "ModelServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
