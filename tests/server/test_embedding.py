"""The embedding API: an asyncio context manager, a thread for synchronous code, the pytest fixture."""

from __future__ import annotations

import aio_pika
import pika

from lapine.config import Config
from lapine.server.app import Server
from lapine.testing import BrokerThread


async def test_server_as_async_context_manager() -> None:
    config = Config(host="127.0.0.1", port=0, management_port=-1, prometheus_port=-1, mqtt_port=-1, web_mqtt_port=-1)
    async with Server(config) as server:
        connection = await aio_pika.connect(server.url)
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"embedded"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"embedded"
        await message.ack()
        await connection.close()


def test_broker_thread_serves_synchronous_code() -> None:
    with BrokerThread() as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.queue_declare("q")
        channel.basic_publish("", "q", b"threaded")
        assert broker.call(lambda: broker.server.broker.vhosts["/"].queues["q"].message_count) == 1
        connection.close()


def test_pytest_fixture_gives_a_fresh_broker(lapine_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(lapine_url))
    channel = connection.channel()
    declared = channel.queue_declare("fresh", passive=False)
    assert declared.method.message_count == 0
    connection.close()
