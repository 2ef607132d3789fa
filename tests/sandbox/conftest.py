"""Shared fixtures for the sandbox tests: one fork server for the whole test session."""

from __future__ import annotations

import os

import pytest

from genprm.sandbox import Sandbox, SandboxConfig, Status

SECRET = "genprm-test-secret-7f3a"

TEST_CONFIG = SandboxConfig(timeout_s=2.0, kill_grace_s=0.5, memory_mb=512, pool_size=2,
                            max_output_bytes=64 * 1024, max_file_mb=8)


@pytest.fixture(scope="session")
def sandbox():
    # A secret in the caller's environment must never reach a snippet.
    os.environ["GENPRM_FAKE_API_KEY"] = SECRET
    try:
        with Sandbox(TEST_CONFIG) as sb:
            yield sb
    finally:
        os.environ.pop("GENPRM_FAKE_API_KEY", None)


@pytest.fixture(scope="session")
def secret() -> str:
    return SECRET


@pytest.fixture(scope="session")
def test_config() -> SandboxConfig:
    return TEST_CONFIG


@pytest.fixture(scope="session")
def check_healthy():
    return assert_healthy


def assert_healthy(sb: Sandbox) -> None:
    """The server is alive and a brand-new session still computes correctly."""
    assert sb.alive
    assert sb.ping()["ok"] is True
    result = sb.run_once("import math\nprint(6 * 7, math.isqrt(49))")
    assert result.status is Status.OK, result
    assert result.stdout == "42 7\n"
