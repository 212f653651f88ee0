"""Names from clients as log lines show them: one line, control characters escaped.

A user or queue name may hold a newline or an ANSI escape; written raw it could forge log lines or
rewrite an operator's terminal.
"""

from __future__ import annotations


def printable(name: str) -> str:
    """``name`` quoted, with newlines, tabs and other non-printable characters escaped."""
    return "'" + "".join(_escape(char) for char in name) + "'"


def _escape(char: str) -> str:
    if char == "'" or char == "\\":
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")
