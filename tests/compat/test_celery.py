"""Celery (through kombu's py-amqp transport) runs tasks through Lapine unchanged, results via rpc://."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

celery = pytest.importorskip("celery")
from celery.contrib.testing.worker import start_worker  # noqa: E402


def test_celery_worker_runs_tasks_and_returns_results(request: pytest.FixtureRequest) -> None:
    url = os.environ.get("AMQP_URL") or request.getfixturevalue("lapine_url")
    app = celery.Celery("lapine-compat", broker=url.replace("amqp://", "pyamqp://"), backend="rpc://")
    app.conf.update(broker_connection_retry_on_startup=False)

    @app.task(name="lapine.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="lapine.fail")
    def fail() -> None:
        raise ValueError("boom")

    with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING", shutdown_timeout=30):
        results = [add.delay(n, n) for n in range(3)]
        assert [r.get(timeout=30) for r in results] == [2 * n for n in range(3)]
        with pytest.raises(ValueError, match="boom"):
            fail.delay().get(timeout=30)


def test_celery_with_quorum_queues_runs_countdown_tasks_through_native_delayed_delivery(
    request: pytest.FixtureRequest,
) -> None:
    """task_default_queue_type='quorum': the worker declares Celery's delayed-delivery topology
    (celery_delayed_0..27 topic exchanges bound exchange to exchange, quorum queues with TTLs,
    reject-publish and at-least-once dead-lettering) and a countdown task waits its delay there,
    not in the worker."""
    url = os.environ.get("AMQP_URL") or request.getfixturevalue("lapine_url")
    app = celery.Celery("lapine-quorum", broker=url.replace("amqp://", "pyamqp://"), backend="rpc://")
    suffix = uuid.uuid4().hex[:8]
    app.conf.update(
        broker_connection_retry_on_startup=False,
        task_default_queue=f"lapine-quorum-{suffix}",
        task_default_exchange=f"lapine-quorum-{suffix}",
        task_default_exchange_type="topic",  # native delayed delivery does not reach direct exchanges
        task_default_queue_type="quorum",
    )

    @app.task(name="lapine.stamp")
    def stamp() -> float:
        return time.time()

    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING", shutdown_timeout=30):
            assert stamp.delay().get(timeout=30) > 0
            sent = time.time()
            result = stamp.apply_async(countdown=3)  # 3 = 0b11: a second in celery_delayed_0 after two in _1
            assert wait_in_delay_queue(app, "celery_delayed_1")
            assert wait_in_delay_queue(app, "celery_delayed_0")
            assert result.get(timeout=30) - sent >= 2.9
    finally:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            channel.queue_delete(f"lapine-quorum-{suffix}")
            channel.exchange_delete(f"lapine-quorum-{suffix}")
            for level in range(28):
                channel.queue_delete(f"celery_delayed_{level}")
                channel.exchange_delete(f"celery_delayed_{level}")
            channel.exchange_delete("celery_delayed_delivery")


def wait_in_delay_queue(app: Any, queue: str, timeout: float = 10.0) -> bool:
    """Does the delayed message show up in one of the delay queues (and not in the worker)?"""
    deadline = time.monotonic() + timeout
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while time.monotonic() < deadline:
            if channel.queue_declare(queue, passive=True).message_count:
                return True
            time.sleep(0.05)
    return False
