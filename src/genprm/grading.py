"""Final-answer extraction and equivalence grading.

This module answers two questions about a model's solution:

* :func:`extract_answer` / :func:`last_boxed` -- what final answer did the
  text give?  The content of the last ``\\boxed{...}`` (nested braces, the
  brace-less ``\\boxed 5`` form and ``\\fbox{...}`` included), failing that a
  "The (final) answer is ..." sentence.
* :func:`is_equivalent` / :func:`grade_pairs` -- is a predicted answer
  mathematically the same as the gold answer?

Equivalence is decided in two stages.  A cheap fast path compares
normalised strings (``$``, ``\\left``/``\\right``, ``\\dfrac``, spacing
commands, ``\\text{...}`` wrappers, degree and percent signs, a leading
``x =`` and case of plain words are all discarded) and exact rational values
of plain numbers (``0.5`` vs ``\\frac{1}{2}``; two different integers are
unequal without further work).  Everything else goes to math-verify
(``parse`` + ``verify``), which handles radicals, intervals, sets, tuples,
matrices, scientific notation and symbolic expressions.

math-verify's own timeouts rely on ``signal.alarm`` and so only work in the
main thread of the main interpreter.  We call it with ``parsing_timeout=None``
and ``timeout_seconds=None`` and instead run it in a small pool of worker
*subprocesses* (plain ``subprocess`` + JSON lines over pipes, so it also works
inside daemonic ``multiprocessing`` workers, threads and forked children).
Each pair gets a deadline; a worker that overruns is killed and replaced and
the pair is graded ``False`` with a logged warning.  :func:`is_equivalent`
and :func:`grade_pairs` share one lazily created pool per process (a forked
child builds its own); it is shut down at interpreter exit or by
:func:`shutdown`, and a worker whose parent disappears sees end-of-file on its
stdin and exits.  Nothing happens at import time.  POSIX only (``select`` on
pipes).

Decisions and known limits
--------------------------
* Percentages: the percent sign is dropped, so ``50\\%`` == ``50``; ``0.5``
  is *not* equal to ``50\\%`` (a grader cannot tell which scale the question
  wanted, and accepting both would let ``0.5`` match ``50``).
* Degrees: ``^\\circ`` / ``°`` are dropped, so ``30^\\circ`` == ``30``;
  radians are not converted (``\\frac{\\pi}{6}`` != ``30^\\circ``).
* A leading single-variable assignment is dropped (``x=3`` == ``3``), also
  for equations such as ``y=2x+1`` vs ``2x+1``.  Different variable names on
  the left are not compared (``x=3`` == ``y=3``).
* Plain words are compared case-insensitively after removing ``\\text{}``
  and similar wrappers, and a multiple-choice letter in parentheses is
  reduced to the letter (``\\text{(C)}`` == ``C`` == ``(c)``).  Words are
  otherwise compared literally: ``\\text{two}`` != ``2``.  A lone letter is
  a word too, so ``x`` == ``X``.
* Decimals are compared by math-verify, which rounds floats before comparing;
  a long decimal approximation can therefore equal a fraction
  (``0.333333`` may equal ``\\frac{1}{3}``) while a short one does not.
* Every answer is wrapped in ``$...$`` and parsed as LaTeX (math-verify
  reads a bare ``3*sqrt(2)`` as ``3``).  A string without any backslash is
  first rewritten from plain notation: ``**`` -> ``^``, ``1e-3`` ->
  ``1\\times10^{-3}``, ``pi``/``exp``/``log``/``ln``/``sin``/``cos``/``tan``
  -> their LaTeX commands (``sqrt(2)`` is understood as is).  Strings mixing
  both notations are not rewritten.
* A pair whose gold or prediction cannot be parsed by math-verify is
  ``False`` unless the fast path already matched it.
* Inherited from math-verify 0.9.0: ``i`` != ``\\sqrt{-1}``; ``\\log``
  without a base is read as base 10 (also plain ``log(8)``).
* Thousands separators are accepted only in the exact form ``1,000`` /
  ``12,345,678`` (``1,000`` == ``1000``); other comma lists are sets/tuples.
* A pair that exceeds its deadline is ``False`` (with a warning), even if a
  slower machine would have proved it equal.
* Worker processes are started with ``sys.executable``; starting one costs
  the import of math-verify and sympy (one to three seconds) per worker,
  once per process.  Idle workers stay alive until exit or :func:`shutdown`.
* Worker memory is not capped: a pathological input may allocate a lot of
  memory before its deadline kills it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_parser",
    "extract_answer",
    "grade_pairs",
    "is_equivalent",
    "last_boxed",
    "shutdown",
]

logger = logging.getLogger(__name__)

#: Default per-pair deadline in seconds.
DEFAULT_TIMEOUT = 5.0
#: How long a freshly started worker may take to import math-verify.
_WORKER_START_TIMEOUT = 120.0
#: Size of the module-level pool used by :func:`is_equivalent`.
_DEFAULT_POOL_SIZE = 4

# --------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _braced_content(text: str, open_idx: int) -> str | None:
    """Return the text inside the brace group opening at ``open_idx``.

    Escaped braces (``\\{``, ``\\}``) do not count.  ``None`` if unbalanced.
    """
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i]
        i += 1
    return None


def _box_content_at(text: str, start: int, command: str) -> str | None:
    """Content of the box command found at ``start``, or ``None`` if invalid."""
    i = start + len(command)
    if i < len(text) and (text[i].isalpha()):
        return None  # e.g. \boxedfoo: another command
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        return _braced_content(text, i)
    if i == start + len(command):
        return None  # "\boxed" directly followed by punctuation: no content
    match = re.match(r"[^\s$]+", text[i:])
    if match is None:
        return None
    return match.group(0).rstrip(".,;")


def last_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``.

    Nested braces are matched; the brace-less ``\\boxed 5`` form gives the
    following token.  Returns ``None`` when there is no well-formed box.  The
    content is returned as written (not stripped); it may be empty.
    """
    positions: list[tuple[int, str]] = []
    for command in _BOX_COMMANDS:
        positions.extend((m.start(), command) for m in re.finditer(re.escape(command), text))
    for start, command in sorted(positions, reverse=True):
        content = _box_content_at(text, start, command)
        if content is not None:
            return content
    return None


_ANSWER_PHRASE = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)


def _answer_from_phrase(text: str) -> str | None:
    """Answer from the last "The (final) answer is ..." sentence."""
    matches = list(_ANSWER_PHRASE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    rest = rest.split("\n", 1)[0].strip().strip("*").strip()
    for open_delim, close_delim in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(open_delim):
            end = rest.find(close_delim, len(open_delim))
            if end != -1:
                rest = rest[len(open_delim) : end]
                break
    else:
        # Cut at the end of the sentence: a period followed by space or end.
        rest = re.split(r"\.(?=\s|$)", rest, maxsplit=1)[0]
    answer = rest.strip().strip("*").strip().strip("$").strip().rstrip(".").strip()
    return answer or None


def extract_answer(text: str) -> str | None:
    """Extract the final answer from a solution text.

    The content of the last ``\\boxed{...}``/``\\fbox{...}`` wins; failing
    that the last "The answer is ..." / "The final answer is ..." phrase
    (surrounding ``$`` and the sentence's trailing period removed).  Returns
    ``None`` when neither is present or the answer is empty.
    """
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    return _answer_from_phrase(text)


# --------------------------------------------------------------------------
# Normalisation and fast path
# --------------------------------------------------------------------------

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad\b|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degrees?\b")
_PERCENT = re.compile(r"\\?%")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=(?!=)")
_CHOICE = re.compile(r"^\(([A-Za-z])\)$")
_WORDS = re.compile(r"^[A-Za-z][A-Za-z ]*$")


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for open_delim, close_delim in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if len(s) >= len(open_delim) + len(close_delim) and s.startswith(open_delim) and s.endswith(close_delim):
                s = s[len(open_delim) : len(s) - len(close_delim)].strip()
                changed = True
    return s


def _light_normalise(s: str) -> str:
    """Normalisation whose result is still LaTeX fit for math-verify."""
    s = _strip_delimiters(s)
    boxed = last_boxed(s)
    if boxed is not None and s.lstrip().startswith(_BOX_COMMANDS):
        s = boxed
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = _SPACING.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = _PERCENT.sub("", s)
    s = s.replace("\\$", "")
    s = s.strip().rstrip(".").strip()
    # Drop a leading "x =" (but not "x == 3" or inequalities).
    if s.count("=") == 1:
        s = _ASSIGNMENT.sub("", s).strip()
    return s


def _unwrap_text(s: str) -> str:
    previous = None
    while previous != s:
        previous = s
        s = _TEXT_WRAPPERS.sub(r"\1", s)
    return s


def _canonical(s: str) -> str:
    """Aggressive normalisation for string comparison only."""
    s = _unwrap_text(_light_normalise(s)).strip()
    choice = _CHOICE.match(s.replace(" ", ""))
    if choice:
        s = choice.group(1)
    if _WORDS.match(s):
        return " ".join(s.split()).casefold()
    return re.sub(r"\s+", "", s)


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_LATEX_FRACTION = re.compile(r"([+-]?)\\frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*([+-]?\d+)\s*\}")
_SLASH_FRACTION = re.compile(r"([+-]?\d+)\s*/\s*([+-]?\d+)")
_INTEGER = re.compile(r"[+-]?\d+")


def _as_number(s: str) -> Fraction | None:
    """Exact value of a plain number (integer, decimal, a/b, \\frac{a}{b})."""
    s = s.strip()
    if len(s) > 200:
        return None
    try:
        if _NUMBER.fullmatch(s):
            return Fraction(s)
        if _THOUSANDS.fullmatch(s):
            return Fraction(s.replace(",", ""))
        match = _LATEX_FRACTION.fullmatch(s)
        if match:
            sign = -1 if match.group(1) == "-" else 1
            return sign * Fraction(int(match.group(2)), int(match.group(3)))
        match = _SLASH_FRACTION.fullmatch(s)
        if match:
            return Fraction(int(match.group(1)), int(match.group(2)))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _fast_path(gold: str, pred: str) -> bool | None:
    """Cheap verdict, or ``None`` when math-verify has to decide."""
    gold_canon, pred_canon = _canonical(gold), _canonical(pred)
    if not pred_canon:
        return False
    if gold_canon == pred_canon:
        return True
    gold_num, pred_num = _as_number(gold_canon), _as_number(pred_canon)
    if gold_num is not None and pred_num is not None:
        if gold_num == pred_num:
            return True
        if _INTEGER.fullmatch(gold_canon) and _INTEGER.fullmatch(pred_canon):
            return False
    return None


_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_POWER = re.compile(r"\*\*\s*(\w+|\([^()]*\))")
_PLAIN_FUNCTIONS = re.compile(r"(?<![A-Za-z\\])(pi|exp|log|ln|sin|cos|tan|infty)\b")


def _plain_to_latex(s: str) -> str:
    """Rewrite plain notation (``3*sqrt(2)``, ``2**10``, ``1e-3``) as LaTeX.

    Only applied to strings without any backslash, i.e. not already LaTeX.
    """
    s = _SCIENTIFIC.sub(r"\1\\times10^{\2}", s)
    s = _POWER.sub(r"^{\1}", s)
    return _PLAIN_FUNCTIONS.sub(r"\\\1 ", s)


def _prepare(s: str) -> str:
    """The LaTeX string handed to math-verify for one answer."""
    s = _unwrap_text(_light_normalise(s))
    if "\\" not in s:
        s = _plain_to_latex(s)
    return s


# --------------------------------------------------------------------------
# math-verify (runs inside the worker processes)
# --------------------------------------------------------------------------


def _mv_equivalent(gold: str, pred: str) -> bool:
    """math-verify verdict for two prepared answers, without any timeout.

    Callers bound the time; this runs in a worker process.
    """
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    gold_parsed = parse(f"${gold}$", extraction_config=config, parsing_timeout=None)
    pred_parsed = parse(f"${pred}$", extraction_config=config, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _worker_main() -> None:
    """Entry point of a worker subprocess: JSON lines in, verdicts out.

    Reads ``[gold, pred]`` (prepared strings) per line on stdin, writes
    ``1``/``0`` (or ``E message``) per line.  Exits at end of input.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep library prints from corrupting the protocol: answers go to a
    # private copy of stdout, anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.ERROR)
    import math_verify  # noqa: F401  (import cost paid before "ready")

    out.write(b"ready\n")
    for line in sys.stdin.buffer:
        try:
            gold, pred = json.loads(line)
            reply = b"1\n" if _mv_equivalent(gold, pred) else b"0\n"
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            reply = b"E " + message.encode("utf-8", "replace") + b"\n"
        out.write(reply)
    # End of input: the parent is done with us.  Skip interpreter teardown
    # (slow with sympy loaded); there is nothing to flush.
    os._exit(0)


# --------------------------------------------------------------------------
# Worker subprocesses and pool (parent side)
# --------------------------------------------------------------------------


class _WorkerTimeout(Exception):
    """The worker did not answer before the deadline (or died)."""


class _Worker:
    """One worker subprocess running :func:`_worker_main`."""

    def __init__(self) -> None:
        if not sys.executable:
            raise RuntimeError("cannot start a grading worker: sys.executable is empty")
        env = dict(os.environ)
        src_dir = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src_dir, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from genprm.grading import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            bufsize=0,
            env=env,
        )
        try:
            line = self._read_line(time.monotonic() + _WORKER_START_TIMEOUT)
        except _WorkerTimeout:
            self.kill()
            raise RuntimeError("grading worker failed to start (see its stderr above)") from None
        if line != b"ready":
            self.kill()
            raise RuntimeError(f"grading worker sent {line!r} instead of 'ready'")

    def _read_line(self, deadline: float) -> bytes:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buffer = b""
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerTimeout
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise _WorkerTimeout
            chunk = os.read(fd, 4096)
            if not chunk:
                raise _WorkerTimeout  # worker died
            buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def ask(self, request: list, timeout: float) -> bool:
        """Send one pair; raise :class:`_WorkerTimeout` past ``timeout`` seconds."""
        assert self._proc.stdin is not None
        deadline = time.monotonic() + timeout
        try:
            self._proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        except (BrokenPipeError, OSError):
            raise _WorkerTimeout from None
        reply = self._read_line(deadline)
        if reply.startswith(b"E "):
            logger.debug("math-verify raised in worker: %s", reply[2:].decode("utf-8", "replace"))
            return False
        return reply == b"1"

    def close(self, wait: float = 1.0) -> None:
        """Ask the worker to exit (end of input); kill it if it lingers."""
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait(timeout=wait)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self._close_pipes()

    def kill(self) -> None:
        try:
            self._proc.kill()
            self._proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            logger.warning("could not reap grading worker pid %s", self._proc.pid)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


class _WorkerPool:
    """Up to ``size`` workers shared by any number of threads."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"worker pool size must be >= 1, got {size}")
        self.size = size
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False

    def grow(self, size: int) -> None:
        """Allow at least ``size`` workers (the pool never shrinks)."""
        with self._cond:
            if size > self.size:
                self.size = size
                self._cond.notify_all()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("grading worker pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _Worker()
        except BaseException:
            self._discard()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._count -= 1
        worker.close()

    def _discard(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def run(self, request: list, timeout: float) -> bool:
        """Grade one prepared pair on some worker, within ``timeout`` seconds."""
        worker = self._acquire()
        try:
            verdict = worker.ask(request, timeout)
        except _WorkerTimeout:
            worker.kill()
            self._discard()
            logger.warning(
                "grading took longer than %.1fs (or its worker died); counted as not equivalent: "
                "gold=%.80r pred=%.80r",
                timeout,
                request[0],
                request[1],
            )
            return False
        except BaseException:
            worker.kill()
            self._discard()
            raise
        self._release(worker)
        return verdict

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.close()


_pool: _WorkerPool | None = None
_pool_lock = threading.Lock()
_atexit_registered = False


def _shared_pool() -> _WorkerPool:
    """The lazily created per-process pool used by :func:`is_equivalent`."""
    global _pool, _atexit_registered
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            # A forked child must not talk to its parent's workers.
            _pool = _WorkerPool(min(_DEFAULT_POOL_SIZE, os.cpu_count() or 1))
            if not _atexit_registered:
                atexit.register(shutdown)
                _atexit_registered = True
        return _pool


def shutdown() -> None:
    """Stop the shared worker pool (it is recreated on the next call)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.close()


# --------------------------------------------------------------------------
# Public grading API
# --------------------------------------------------------------------------


def _check_pair(gold: object, pred: object) -> None:
    if not isinstance(gold, str) or not isinstance(pred, str):
        raise TypeError(
            f"gold and pred must be str, got {type(gold).__name__} and {type(pred).__name__}"
        )


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")


def _request(gold: str, pred: str) -> list[str]:
    return [_prepare(gold), _prepare(pred)]


def is_equivalent(gold: str, pred: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether ``pred`` is mathematically equivalent to ``gold``.

    Safe to call from any thread or process.  Pairs not settled by the fast
    path are sent to a worker subprocess; if that takes longer than
    ``timeout`` seconds the worker is replaced and the answer is ``False``.
    """
    _check_pair(gold, pred)
    _check_timeout(timeout)
    fast = _fast_path(gold, pred)
    if fast is not None:
        return fast
    return _shared_pool().run(_request(gold, pred), timeout)


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def grade_pairs(
    pairs: Sequence[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> list[bool]:
    """Grade many ``(gold, pred)`` pairs; results are in input order.

    Pairs left over by the fast path are graded ``workers`` at a time
    (default: one per CPU) on the shared worker pool, which grows to at
    least ``workers`` subprocesses and keeps them for later calls (see
    :func:`shutdown`).  Identical pairs are graded once.
    ``timeout`` is the per-pair deadline.  ``progress`` shows a tqdm bar:
    ``None`` means only when stderr is a terminal.
    """
    _check_timeout(timeout)
    n_workers = _default_workers() if workers is None else workers
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    for gold, pred in pairs:
        _check_pair(gold, pred)

    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    results: list[bool | None] = [None] * len(pairs)
    pending: dict[tuple[str, str], list[int]] = {}
    with tqdm(total=len(pairs), disable=not show, desc="grading", unit="pair") as bar:
        for index, (gold, pred) in enumerate(pairs):
            fast = _fast_path(gold, pred)
            if fast is None:
                pending.setdefault((gold, pred), []).append(index)
            else:
                results[index] = fast
                bar.update(1)
        if pending:
            pool = _shared_pool()
            pool.grow(n_workers)
            executor = ThreadPoolExecutor(max_workers=min(n_workers, len(pending)), thread_name_prefix="grading")
            try:
                futures = {
                    executor.submit(pool.run, _request(gold, pred), timeout): indices
                    for (gold, pred), indices in pending.items()
                }
                for future in as_completed(futures):
                    verdict = future.result()
                    for index in futures[future]:
                        results[index] = verdict
                    bar.update(len(futures[future]))
            finally:
                executor.shutdown(wait=True, cancel_futures=True)
    return [bool(r) for r in results]


def add_parser(subparsers: Any) -> Any:
    """Register the ``grade`` command; see :mod:`genprm.grading_cli`.

    Kept here so the CLI can wire ``genprm.grading.add_parser``; argparse is
    only imported when this is called.
    """
    from genprm.grading_cli import add_parser as add_grade_parser

    return add_grade_parser(subparsers)
