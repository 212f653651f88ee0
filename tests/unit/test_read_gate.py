"""The read gate: shut while any reason is left, opened when the last one goes."""

from __future__ import annotations

from lapine.broker.read_gate import Pause, ReadGate


class Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = ReadGate(lambda: self.calls.append("pause"), lambda: self.calls.append("resume"))


def test_an_open_gate_has_no_reason() -> None:
    gate = ReadGate()
    assert not gate.shut and gate.reasons == set()


def test_the_first_reason_shuts_it_once() -> None:
    t = Transport()
    t.gate.pause(Pause.TICK)
    t.gate.pause(Pause.ALARM)
    t.gate.pause(Pause.TICK)
    assert t.gate.shut
    assert t.gate.reasons == {Pause.TICK, Pause.ALARM}
    assert t.calls == ["pause"]


def test_it_opens_only_when_the_last_reason_goes() -> None:
    t = Transport()
    t.gate.pause(Pause.TICK)
    t.gate.pause(Pause.LOGIN)
    t.gate.resume(Pause.TICK)
    assert t.gate.shut and t.calls == ["pause"]
    t.gate.resume(Pause.LOGIN)
    assert not t.gate.shut and t.calls == ["pause", "resume"]


def test_resuming_for_a_reason_it_was_not_paused_for_changes_nothing() -> None:
    t = Transport()
    t.gate.resume(Pause.STORE)
    assert t.calls == []
    t.gate.pause(Pause.HELD)
    t.gate.resume(Pause.STORE)
    assert t.gate.reasons == {Pause.HELD} and t.calls == ["pause"]


def test_pause_while_follows_a_condition() -> None:
    t = Transport()
    t.gate.pause_while(Pause.FLOW, True)
    assert t.gate.reasons == {Pause.FLOW}
    t.gate.pause_while(Pause.UNREAD, False)
    assert t.gate.reasons == {Pause.FLOW}
    t.gate.pause_while(Pause.FLOW, False)
    assert not t.gate.shut and t.calls == ["pause", "resume"]


def test_the_reasons_set_is_the_same_object_throughout() -> None:
    """The connection's frame loop reads it once per read and sees every change made meanwhile."""
    gate = ReadGate()
    reasons = gate.reasons
    gate.pause(Pause.ANSWER)
    assert reasons
    gate.resume(Pause.ANSWER)
    assert not reasons and gate.reasons is reasons


def test_a_pause_and_resume_cycle_can_repeat() -> None:
    t = Transport()
    for _ in range(3):
        t.gate.pause(Pause.TICK)
        t.gate.resume(Pause.TICK)
    assert t.calls == ["pause", "resume"] * 3
