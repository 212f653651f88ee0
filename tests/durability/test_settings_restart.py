"""Settings made over the management API survive a restart: vhost description and tags, vhost
limits, topic permissions (RabbitMQ keeps them all in its metadata store)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from lapine.store.sqlite import DB_FILE
from lapine.testing import BrokerThread
from tests.management.client import Http

Restartable = Callable[[], BrokerThread]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Restartable]:
    """broker() starts a broker on tmp_path's data directory, stopping the previous one first."""
    running: list[BrokerThread] = []

    def start() -> BrokerThread:
        if running:
            running.pop().stop()
        thread = BrokerThread(data_dir=str(tmp_path / "data"), prometheus_port=-1)
        running.append(thread.start())
        return thread

    yield start
    for thread in running:
        thread.stop()


def test_vhost_description_and_tags_survive(broker: Restartable) -> None:
    api = Http(broker().management_url)
    body = {"description": "orders of the EU shop", "tags": "eu,production", "default_queue_type": "classic"}
    assert api.put("/api/vhosts/eu", body).status == 201
    api = Http(broker().management_url)
    info = api.get("/api/vhosts/eu").json
    assert (info["description"], info["tags"], info["default_queue_type"]) == (
        "orders of the EU shop",
        ["eu", "production"],
        "classic",
    )
    assert api.put("/api/vhosts/eu", {"description": "renamed"}).status == 204
    info = Http(broker().management_url).get("/api/vhosts/eu").json
    assert (info["description"], info["tags"]) == ("renamed", [])


def test_vhost_limits_survive_and_hold(broker: Restartable) -> None:
    api = Http(broker().management_url)
    api.put("/api/vhost-limits/%2F/max-queues", {"value": 1})
    api.put("/api/vhost-limits/%2F/max-connections", {"value": 3})
    api.delete("/api/vhost-limits/%2F/max-connections")
    running = broker()
    assert Http(running.management_url).get("/api/vhost-limits").json == [{"vhost": "/", "value": {"max-queues": 1}}]
    channel = pika.BlockingConnection(pika.URLParameters(running.url)).channel()
    channel.queue_declare("only-one")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("one-too-many")
    assert info.value.reply_code == 406
    channel.connection.close()
    Http(running.management_url).delete("/api/vhost-limits/%2F/max-queues")
    assert Http(broker().management_url).get("/api/vhost-limits").json == []


def test_topic_permissions_survive_and_hold(broker: Restartable) -> None:
    api = Http(broker().management_url)
    api.put("/api/users/writer", {"password": "writer", "tags": ""})
    api.put("/api/permissions/%2F/writer", {"configure": ".*", "write": ".*", "read": ".*"})
    api.put("/api/topic-permissions/%2F/writer", {"exchange": "amq.topic", "write": "^ok\\.", "read": ".*"})
    api.put("/api/topic-permissions/%2F/writer", {"exchange": "gone", "write": "", "read": ""})
    api.delete("/api/topic-permissions/%2F/writer/gone")
    running = broker()
    assert Http(running.management_url).get("/api/topic-permissions").json == [
        {"user": "writer", "vhost": "/", "exchange": "amq.topic", "write": "^ok\\.", "read": ".*"}
    ]
    url = running.url.replace("guest:guest", "writer:writer")
    channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
    channel.basic_publish("amq.topic", "ok.fine", b"m")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("amq.topic", "not.ok", b"m")
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 403
    channel.connection.close()
    Http(running.management_url).delete("/api/users/writer")
    assert Http(broker().management_url).get("/api/topic-permissions").json == []


def test_a_data_directory_written_before_these_settings_still_opens(broker: Restartable, tmp_path: Path) -> None:
    """Earlier Lapines wrote vhosts without description or tags, no limits and no cluster id: they
    read back empty, and the id is made."""
    broker().stop()
    database = tmp_path / "data" / DB_FILE
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE vhosts SET description = '', tags = '[]', default_queue_type = NULL")
        conn.execute("DELETE FROM parameters")
        conn.execute("DELETE FROM topic_permissions")
        conn.execute("DELETE FROM global_parameters")
    api = Http(broker().management_url)
    info = api.get("/api/vhosts/%2F").json
    assert (info["description"], info["tags"], info["default_queue_type"]) == ("", [], "undefined")
    assert api.get("/api/vhost-limits").json == []
    # The cluster's permanent id is made on that start and kept from then on.
    made = cluster_id(api)
    assert cluster_id(Http(broker().management_url)) == made


def cluster_id(api: Http) -> str:
    parameters = {p["name"]: p["value"] for p in api.get("/api/definitions").json["global_parameters"]}
    value: str = parameters["internal_cluster_id"]
    return value
