"""Celery (through kombu's py-amqp transport) runs tasks through Lapine unchanged, results via rpc://."""

from __future__ import annotations

import os

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
