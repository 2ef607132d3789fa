"""A dataset's reference answer from its solution text: the content of the last box.

Box extraction itself (nested braces, ``\\fbox``, the unbraced ``\\boxed 5``) lives in
:func:`genprm.grading.last_boxed`; a dataset answer is that content stripped, and None when
there is no box or it is empty.
"""

from __future__ import annotations

from genprm.grading import last_boxed as _last_box

__all__ = ["last_boxed"]


def last_boxed(text: str) -> str | None:
    """The stripped content of the last ``\\boxed``/``\\fbox`` in ``text``; None if none or empty."""
    content = _last_box(text)
    return content.strip() or None if content is not None else None
