"""A consumer with no prefetch limit on a queue whose backlog lives on disk: it must not pull the
whole backlog into memory as unacknowledged deliveries. Past ``queue_window`` unacked deliveries
the backlog stays on disk until acks come; then every message still arrives, once, in order."""

from __future__ import annotations

from pathlib import Path

import pika
import pika.spec

from tests.hardening.conftest import StartBroker

WINDOW = 50
BACKLOG = 1_000


def _received_until_quiet(connection: pika.BlockingConnection, inbox: list[int]) -> int:
    """Process events until no delivery arrives for a while; the number received."""
    while True:
        before = len(inbox)
        connection.process_data_events(time_limit=0.3)
        if len(inbox) == before:
            return before


def test_a_consumer_without_prefetch_gets_the_paged_backlog_as_it_acks(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    broker = start_broker(data_dir=str(tmp_path), queue_window=WINDOW)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("backlog", durable=True)
    channel.confirm_delivery()
    for number in range(BACKLOG):
        channel.basic_publish("", "backlog", b"%d" % number, pika.BasicProperties(delivery_mode=2))

    inbox: list[int] = []
    tags: list[int] = []

    def on_message(
        _channel: object, method: pika.spec.Basic.Deliver, _properties: object, body: bytes
    ) -> None:
        inbox.append(int(body))
        tags.append(method.delivery_tag)

    channel.basic_consume("backlog", on_message)  # no basic.qos: no prefetch limit
    held = _received_until_quiet(connection, inbox)
    # What memory holds: the window, one page more, and nothing of the rest of the disk.
    assert WINDOW <= held <= 2 * WINDOW
    assert broker.server is not None
    queue = broker.server.broker.vhosts["/"].queues["backlog"]
    assert broker.call(lambda: queue.unacked_count) == held

    while len(inbox) < BACKLOG:
        before = len(inbox)
        channel.basic_ack(tags[-1], multiple=True)
        assert _received_until_quiet(connection, inbox) > before  # the acks page the next part in
    assert inbox == list(range(BACKLOG))
    connection.close()
