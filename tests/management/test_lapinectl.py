"""lapinectl, run as a subprocess the way an operator runs it, against a broker started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pika
import pytest

from lapine.testing import BrokerThread
from tests.management.client import Http, q
from tests.management.conftest import amqp_params

Ctl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def ctl(broker: BrokerThread) -> Ctl:
    """ctl(*args, env=None) -> the finished lapinectl process (port from the environment)."""
    port = str(broker.server.management_port if broker.server else 0)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LAPINECTL_PORT": port, "LAPINECTL_HOST": "127.0.0.1"}
        command = [sys.executable, "-m", "lapine.cli.ctl", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, input=stdin, timeout=30)

    return run


def rows(output: str) -> list[list[str]]:
    return [line.split("\t") for line in output.strip().splitlines()]


def test_list_queues_with_columns(ctl: Ctl, broker: BrokerThread, unique: Callable[[str], str]) -> None:
    queue = unique("ctlq")
    connection = pika.BlockingConnection(amqp_params(broker.url))
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"one")
    channel.basic_consume(queue, lambda *args: None, auto_ack=False)
    try:
        done = ctl("list_queues", "name", "messages", "consumers")
        assert done.returncode == 0, done.stderr
        table = rows(done.stdout)
        assert table[0] == ["name", "messages", "consumers"]
        assert [queue, "1", "1"] in table
        assert "Listing queues for vhost / ..." in done.stderr
        as_json = json.loads(ctl("--formatter", "json", "-q", "list_queues", "name", "durable").stdout)
        assert {"name": queue, "durable": False} in as_json
        consumers = rows(ctl("-q", "list_consumers", "queue_name", "ack_required").stdout)
        assert [queue, "true"] in consumers
        channels = rows(ctl("-q", "list_channels", "user", "consumer_count").stdout)
        assert ["guest", "1"] in channels
        connections = rows(ctl("-q", "list_connections", "user", "state").stdout)
        assert ["guest", "running"] in connections
    finally:
        connection.close()


def test_exchanges_and_bindings(ctl: Ctl, http: Http, unique: Callable[[str], str]) -> None:
    exchange, queue = unique("ctlx"), unique("ctlbq")
    http.put(f"/api/exchanges/%2F/{q(exchange)}", {"type": "topic", "durable": False})
    http.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
    http.post(f"/api/bindings/%2F/e/{q(exchange)}/q/{q(queue)}", {"routing_key": "a.#"})
    assert [exchange, "topic"] in rows(ctl("-q", "list_exchanges").stdout)
    bindings = rows(ctl("-q", "list_bindings").stdout)
    assert bindings[0] == [
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ]
    assert [exchange, "exchange", queue, "queue", "a.#", "{}"] in bindings


def test_users_vhosts_and_permissions(ctl: Ctl, unique: Callable[[str], str]) -> None:
    user, vhost = unique("ctluser"), unique("ctlvh")
    assert ctl("add_user", user, "s3cret").returncode == 0
    assert ctl("add_user", user, "again").returncode != 0
    assert ctl("set_user_tags", user, "monitoring", "policymaker").returncode == 0
    assert [user, "monitoring,policymaker"] in rows(ctl("-q", "list_users").stdout)
    assert ctl("add_vhost", vhost).returncode == 0
    assert [vhost] in rows(ctl("-q", "list_vhosts").stdout)
    assert ctl("set_permissions", "-p", vhost, user, "^c", "^w", "^r").returncode == 0
    assert [user, "^c", "^w", "^r"] in rows(ctl("-q", "list_permissions", "-p", vhost).stdout)
    assert [vhost, "^c", "^w", "^r"] in rows(ctl("-q", "list_user_permissions", user).stdout)
    assert ctl("change_password", user, "n3w").returncode == 0
    login = ctl("--username", user, "--password", "n3w", "-q", "list_vhosts")
    assert login.returncode == 0 and [vhost] in rows(login.stdout)
    assert ctl("clear_permissions", "-p", vhost, user).returncode == 0
    assert [user, "^c", "^w", "^r"] not in rows(ctl("-q", "list_permissions", "-p", vhost).stdout)
    assert ctl("delete_vhost", vhost).returncode == 0
    assert ctl("delete_user", user).returncode == 0
    missing = ctl("delete_user", user)
    assert missing.returncode != 0 and missing.stderr.startswith("Error: ")
    assert "Traceback" not in missing.stderr


def test_purge_and_delete_queue(ctl: Ctl, http: Http, unique: Callable[[str], str]) -> None:
    queue = unique("ctlpurge")
    http.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
    message = {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {}}
    http.post("/api/exchanges/%2F/amq.default/publish", message)
    refused = ctl("delete_queue", queue, "--if-empty")
    assert refused.returncode != 0 and "not empty" in refused.stderr
    assert ctl("purge_queue", queue).returncode == 0
    assert http.get(f"/api/queues/%2F/{q(queue)}").json["messages"] == 0
    assert ctl("delete_queue", queue).returncode == 0
    assert http.get(f"/api/queues/%2F/{q(queue)}").status == 404


def test_definitions_round_trip(ctl: Ctl, http: Http, tmp_path: Path, unique: Callable[[str], str]) -> None:
    queue = unique("ctldef")
    http.put(f"/api/queues/%2F/{q(queue)}", {"durable": True})
    target = tmp_path / "defs.json"
    assert ctl("export_definitions", str(target)).returncode == 0
    data = json.loads(target.read_text())
    assert any(item["name"] == queue for item in data["queues"])
    http.delete(f"/api/queues/%2F/{q(queue)}")
    assert ctl("import_definitions", str(target)).returncode == 0
    assert http.get(f"/api/queues/%2F/{q(queue)}").status == 200
    bad = ctl("import_definitions", str(tmp_path / "missing.json"))
    assert bad.returncode != 0 and "cannot read" in bad.stderr


def test_status_and_unreachable(ctl: Ctl) -> None:
    done = ctl("status")
    assert done.returncode == 0
    facts = dict(line.split("\t", 1) for line in done.stdout.strip().splitlines())
    assert facts["product"].startswith("Lapine") and "total_queues" in facts
    env = {**os.environ, "LAPINECTL_PORT": "1"}
    command = [sys.executable, "-m", "lapine.cli.ctl", "list_queues"]
    down = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
    assert down.returncode == 69
    assert down.stderr.startswith("Error: unable to reach the management API")


def test_policies(ctl: Ctl, unique: Callable[[str], str]) -> None:
    name = unique("ctlpol")
    done = ctl("set_policy", "--apply-to", "queues", "--priority", "2", name, "^ctl-", '{"max-length": 5}')
    assert done.returncode == 0, done.stderr
    listed = rows(ctl("-q", "list_policies", "name", "pattern", "apply-to", "definition", "priority").stdout)
    assert [name, "^ctl-", "queues", '{"max-length":5}', "2"] in listed
    bad = ctl("set_policy", name, "^x", "{not json")
    assert bad.returncode == 64 and "not valid JSON" in bad.stderr
    assert ctl("clear_policy", name).returncode == 0
    assert ctl("clear_policy", name).returncode != 0
