"""Permission patterns run on RE2: linear time on the event loop, and what RE2 cannot run is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lapine.auth.permissions import Permission
from lapine.broker import definitions
from lapine.broker.broker import Broker

_SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_a_catastrophic_pattern_against_a_long_name_is_answered() -> None:
    # A backtracking engine tries 2**5000 ways to match this before saying no; RE2 says no at once.
    # In a child process so that the engine that never answers cannot hang the test run itself.
    code = (
        "from lapine.auth.permissions import Permission\n"
        "p = Permission('u', '/', configure='^(a+)+$')\n"
        "print(p.allows('configure', 'a' * 5000 + '!'), p.allows('configure', 'a' * 5000))\n"
    )
    env = {**os.environ, "PYTHONPATH": _SRC}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_patterns_mean_what_they_mean_in_rabbitmq() -> None:
    permission = Permission("u", "/", configure="^app\\.", write="", read=".*")
    assert permission.allows("configure", "app.orders")
    assert not permission.allows("configure", "other.app.orders")
    assert not permission.allows("write", "anything")  # an empty pattern grants nothing
    assert permission.allows("read", "amq.default")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence: \\1"),  # a backreference: backtracking only
        ("^(?=app)", "invalid perl operator: (?="),  # a lookahead
        ("(", "missing ): ("),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_where_it_is_set(pattern: str, reason: str) -> None:
    broker = Broker()
    with pytest.raises(definitions.DefinitionError) as info:
        definitions.set_permissions(broker, "guest", "/", ".*", pattern, ".*")
    assert str(info.value) == f"invalid_regexp: '{pattern}': {reason} (patterns are matched by RE2)"
    assert broker.permissions.get("guest", "/") == Permission("guest", "/")  # unchanged


def test_a_stored_pattern_re2_cannot_run_grants_nothing() -> None:
    # One set before patterns were checked by RE2 (an older data directory): it matches no name.
    permission = Permission("u", "/", read="(a)\\1")
    assert not permission.allows("read", "aa")
