"""Fixtures for the generation-engine tests: one tiny model, one engine of each kind per session.

* ``tiny_model``: a byte-level BPE tokenizer and a briefly trained 2-layer Llama, built once
  (about 30-60 s on 2 cores) with :func:`genprm.engine.tiny_model.build_tiny_model`; set
  ``GENPRM_TINY_MODEL`` to a folder built before to skip that.
* ``hf_gen``, ``vllm_gen``: the ``hf`` and ``vllm`` (in-process, CPU) backends on it.
* ``api_server``: vLLM's OpenAI-compatible server on 127.0.0.1 on a free port, started as a
  subprocess, waited on ``/health``, stopped by its PID at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SERVER_START_TIMEOUT_S = float(os.environ.get("GENPRM_TEST_SERVER_TIMEOUT", "240"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    prebuilt = os.environ.get("GENPRM_TINY_MODEL")
    if prebuilt:
        return prebuilt
    from genprm.engine.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="session")
def hf_gen(tiny_model: str) -> Iterator[object]:
    from genprm.engine import create_generator

    gen = create_generator("hf", model=tiny_model, dtype="float32", batch_size=128)
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def vllm_gen(tiny_model: str) -> Iterator[object]:
    from genprm.engine import create_generator

    gen = create_generator("vllm", model=tiny_model, dtype="float32")
    yield gen
    gen.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    return _free_port()


@pytest.fixture(scope="session")
def api_server(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a vLLM OpenAI-compatible server on the tiny model."""
    import httpx

    port = _free_port()
    log_path = Path(tmp_path_factory.mktemp("api_server")) / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", tiny_model, "--served-model-name", "tiny",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--seed", "0",
    ]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"api_server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"api_server not healthy after {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
