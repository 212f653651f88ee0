"""Text that clients chose, as a log line shows it: on one line, control characters escaped.

Reply texts carry names from clients (queues, exchanges, consumer tags); a name may hold a newline
or an ANSI escape, and written raw it would forge log lines or rewrite an operator's terminal.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with backslashes, newlines and every other non-printable character escaped."""
    if text.isprintable() and "\\" not in text:
        return text  # the usual case, unchanged
    return "".join(_escape(char) for char in text)


def quoted(text: str) -> str:
    """``text`` as ``one_line`` shows it, in single quotes (a quote inside it escaped)."""
    return "'" + one_line(text).replace("'", "\\'") + "'"


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")
