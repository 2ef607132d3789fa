"""Extract the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in a LaTeX text.

Braces are matched by counting, with escaped braces (``\\{``, ``\\}``) ignored, so nested
groups such as ``\\boxed{\\frac{1}{2}}`` come out whole. The unbraced form ``\\boxed 5``
(seen in a few MATH solutions) gives the token that follows the command.
"""

from __future__ import annotations

import re

__all__ = ["last_boxed"]

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _braced(text: str, start: int) -> str | None:
    """Content of the group opening at ``text[start] == '{'``; None if it never closes."""
    depth = 0
    i = start
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
                return text[start + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """The stripped content of the last ``\\boxed``/``\\fbox`` in ``text``, or None.

    None when there is no box, when the last box's group never closes, or when it is empty.
    """
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "{":
        content = _braced(text, i)
    else:
        token = re.match(r"[^\s$]+", text[i:])
        content = token.group(0) if token else None
    if content is None or not content.strip():
        return None
    return content.strip()
