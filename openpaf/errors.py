"""Errors as one line of text, for reports of the form ``skipped <source>: <reason>``."""
from __future__ import annotations


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with its white space folded to single spaces, cut to ``limit`` chars."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_line(error: BaseException | str, default: str | None = None) -> str:
    """The first line of an exception's message (or of a text), for libraries that raise
    pages of text; ``default`` when it is empty (by default the exception's type name)."""
    lines = str(error).strip().splitlines()
    if lines:
        return lines[0]
    return default if default is not None else type(error).__name__


def error_reason(exc: BaseException) -> str:
    """``"<Type>: <message on one line>"``, or just the type name."""
    msg = one_line(str(exc))
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
