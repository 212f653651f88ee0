"""A Node publisher in a tight synchronous loop (``while (ch.sendToQueue(...))``, then 'drain')
ends each loop and gets each 'drain': the broker's back-pressure reaches it through TCP, and the
broker reads again as its queue's consumer catches up. Run with Node's amqplib, as users do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lapine.testing import BrokerThread

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "bench" / "loadgen" / "node_modules"
SCRIPT = Path(__file__).with_name("sync_publish_loop.js")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "amqplib").is_dir(),
    reason="needs node and amqplib (npm ci --prefix bench/loadgen)",
)


def run_loop(url: str, queue: str, total: int, consumer: str) -> dict[str, int]:
    done = subprocess.run(
        ["node", str(SCRIPT), url, queue, str(total), consumer],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("consumer", ["none", "manual"])
def test_a_synchronous_publish_loop_meets_back_pressure_and_drains(consumer: str) -> None:
    total = 20_000
    with BrokerThread(management_port=-1, prometheus_port=-1) as broker:
        result = run_loop(broker.url, f"sync-loop-{consumer}", total, consumer)
    assert result["sent"] == total
    # Many loops: each ended when the client's buffer filled, and went on after 'drain'.
    assert result["loops"] > 1
    if consumer == "manual":
        assert result["received"] == total and result["outOfOrder"] == 0
        assert result["queued"] == 0
    else:
        assert result["queued"] == total
