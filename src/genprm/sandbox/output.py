"""Execution results and the ``[Code Output]`` text fed back to the model.

Usage::

    result = session.run("print(1 + 1)")
    result.status            # Status.OK
    format_code_output(result)   # "2"  (what goes between the [Code Output] fences)
    code_output_block(result)    # "[Code Output]\\n\\n```\\n2\\n```\\n"

Compatibility with the released GenPRM code (``CodeExecutor.execute`` in
RyanLiu112/GenPRM, which ran ``exec`` under ``redirect_stdout`` and a 5 s
SIGALRM).  Published models were trained on these shapes, so we reproduce them:

=============  ==============================================================
status         text returned by :func:`format_code_output`
=============  ==============================================================
ok             captured stdout, ``.strip()``-ed (same as the release)
error          ``Code execute Error: {Type}: {message}`` (stdout printed before
               the exception is dropped, as in the release)
timeout        ``Code execute time out: Code execution timed out`` (the release's
               TimeoutError message; also used when we had to SIGKILL)
memory         ``Code execute Error: MemoryError: {message}`` (in the release a
               memory bomb raised MemoryError or killed the whole run)
output_limit   new: stripped stdout cut at the cap, then a line
               ``... [output truncated: more than N bytes]``
crashed        new: ``Code execute Error: SandboxCrash: {detail}`` (the release
               process itself would have died: segfault, os._exit, kill)
no code        ``Code format error: No code found.`` (constant ``NO_CODE_OUTPUT``; for callers)
=============  ==============================================================

The block appended to the prompt is ``"[Code Output]\\n\\n```\\n{text}\\n```\\n"``.
Differences from the release: ``SystemExit``/``KeyboardInterrupt`` are reported as
errors (the release let them escape and stop the program); stderr is captured
separately and never shown to the model (the release let it go to the console).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

TIMEOUT_TEXT = "Code execute time out: Code execution timed out"
ERROR_PREFIX = "Code execute Error: "
NO_CODE_OUTPUT = "Code format error: No code found."
TRUNCATION_MARKER = "... [output truncated: more than {limit} bytes]"
TIMEOUT_ERROR = "TimeoutError: Code execution timed out"


class Status(str, enum.Enum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    CRASHED = "crashed"


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one snippet in one session (data, never raised)."""

    status: Status
    stdout: str = ""
    """Captured stdout, capped; ends with the truncation marker when cut."""
    error: str | None = None
    """``Type: message`` for error/memory/timeout/crashed, else None."""
    duration_s: float = 0.0
    """Wall time seen by the client, request sent to reply received."""
    stderr: str = ""
    truncated: bool = False
    session_lost: bool = False
    """True when the session process was killed or died: its namespace is gone and the
    next ``run`` on the same Session starts from a fresh one."""
    seq: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def duration_ms(self) -> float:
        return self.duration_s * 1000.0

    def to_json_dict(self) -> dict:
        return {
            "status": self.status.value,
            "stdout": self.stdout,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }


def truncate_bytes(data: bytes, limit: int) -> tuple[str, bool]:
    """Decode captured bytes (invalid UTF-8 replaced), cutting at ``limit`` with a marker."""
    cut = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace")
    if cut:
        text = text + "\n" + TRUNCATION_MARKER.format(limit=limit)
    return text, cut


def format_code_output(result: ExecResult) -> str:
    """Text for the ``[Code Output]`` block, in the released GenPRM code's conventions."""
    if result.status is Status.OK:
        return result.stdout.strip()
    if result.status is Status.TIMEOUT:
        return TIMEOUT_TEXT
    if result.status is Status.OUTPUT_LIMIT:
        return result.stdout.strip()
    if result.status is Status.MEMORY:
        return ERROR_PREFIX + (result.error or "MemoryError: ")
    return ERROR_PREFIX + (result.error or "SandboxCrash: unknown failure")


def code_output_block(result: ExecResult) -> str:
    """The full block the released code appended to the prompt after a code step."""
    return f"[Code Output]\n\n```\n{format_code_output(result)}\n```\n"
