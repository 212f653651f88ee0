"""RabbitMQ's own CLI, rabbitmqadmin (shipped in Debian's rabbitmq-server), against Lapine.

The script is found on PATH or at $RABBITMQADMIN (.ci/run unpacks it from Debian's package
without installing RabbitMQ). It talks to the HTTP API only, so it must not tell us apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from lapine.testing import BrokerThread

SCRIPT = os.environ.get("RABBITMQADMIN") or shutil.which("rabbitmqadmin")
pytestmark = pytest.mark.skipif(
    not SCRIPT, reason="rabbitmqadmin is not installed (Debian's rabbitmq-server ships it; .ci/run unpacks it)"
)

Admin = Callable[..., str]


@pytest.fixture(scope="module")
def admin(broker: BrokerThread) -> Admin:
    port = str(broker.server.management_port if broker.server else 0)

    def run(*args: str) -> str:
        command = [sys.executable, str(SCRIPT), "-H", "127.0.0.1", "-P", port, "-f", "tsv", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"rabbitmqadmin {' '.join(args)}: {done.stdout} {done.stderr}"
        return done.stdout

    return run


def test_declare_list_publish_get_delete(admin: Admin, unique: Callable[[str], str]) -> None:
    queue, exchange = unique("adminq"), unique("adminx")
    admin("declare", "queue", f"name={queue}", "durable=false")
    admin("declare", "exchange", f"name={exchange}", "type=topic")
    admin("declare", "binding", f"source={exchange}", f"destination={queue}", "routing_key=orders.*")
    assert "Message published" in admin("publish", f"exchange={exchange}", "routing_key=orders.new", "payload=hello")
    assert f"{queue}\t1" in admin("list", "queues", "name", "messages")
    assert f"{exchange}\ttopic" in admin("list", "exchanges", "name", "type")
    assert f"{exchange}\t{queue}\torders.*" in admin("list", "bindings", "source", "destination", "routing_key")
    got = admin("get", f"queue={queue}", "ackmode=ack_requeue_false")
    assert "hello" in got and "orders.new" in got
    assert f"{queue}\t0" in admin("list", "queues", "name", "messages")
    binding = [f"source={exchange}", f"destination={queue}", "destination_type=queue", "properties_key=orders.*"]
    admin("delete", "binding", *binding)
    assert exchange not in admin("list", "bindings", "source")
    admin("delete", "queue", f"name={queue}")
    admin("delete", "exchange", f"name={exchange}")
    assert queue not in admin("list", "queues", "name")


def test_users_vhosts_overview(admin: Admin, unique: Callable[[str], str]) -> None:
    user, vhost = unique("adminuser"), unique("adminvh")
    admin("declare", "user", f"name={user}", "password=pw", "tags=management")
    admin("declare", "vhost", f"name={vhost}")
    admin("declare", "permission", f"vhost={vhost}", f"user={user}", "configure=.*", "write=.*", "read=.*")
    assert user in admin("list", "users", "name")
    assert vhost in admin("list", "vhosts", "name")
    assert f"{user}\t{vhost}" in admin("list", "permissions", "user", "vhost")
    assert "rabbitmq_version" in admin("show", "overview")
    admin("delete", "vhost", f"name={vhost}")
    admin("delete", "user", f"name={user}")
    assert vhost not in admin("list", "vhosts", "name")
