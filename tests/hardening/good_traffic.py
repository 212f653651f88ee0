"""Well-behaved clients that run while a test misbehaves around them: pika publishers with
publisher confirms and a consumer with manual acks, every message tagged with a unique id.

``verify()`` is the promise a broker makes: every message whose publish was confirmed reaches the
consumer, and exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid

import pika
import pika.exceptions


class GoodTraffic:
    def __init__(self, url: str, publishers: int = 3, pause: float = 0.002) -> None:
        self.url = url
        self.queue = f"good-traffic-{uuid.uuid4().hex}"
        self.publishers = publishers
        self.pause = pause
        self.confirmed: list[list[str]] = [[] for _ in range(publishers)]
        self.received: list[str] = []
        self.errors: list[BaseException] = []
        self._stop_publishing = threading.Event()
        self._stop_consuming = threading.Event()
        self._threads: list[threading.Thread] = []

    def _connect(self) -> pika.BlockingConnection:
        params = pika.URLParameters(self.url)
        params.socket_timeout = 10
        params.blocked_connection_timeout = 30
        return pika.BlockingConnection(params)

    def start(self) -> GoodTraffic:
        connection = self._connect()
        connection.channel().queue_declare(self.queue, durable=True)
        connection.close()
        self._spawn(self._consume, "good-consumer")
        for index in range(self.publishers):
            self._spawn(self._publish, f"good-publisher-{index}", index)
        return self

    def _spawn(self, target: object, name: str, *args: object) -> None:
        def run() -> None:
            try:
                target(*args)  # type: ignore[operator]
            except BaseException as error:  # reported by verify()
                self.errors.append(error)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _publish(self, index: int) -> None:
        connection = self._connect()
        channel = connection.channel()
        channel.confirm_delivery()
        number = 0
        while not self._stop_publishing.is_set():
            message_id = f"{index}-{number}"
            # With confirms on, basic_publish returns once the broker has acked the message.
            channel.basic_publish("", self.queue, message_id.encode(), pika.BasicProperties(delivery_mode=2))
            self.confirmed[index].append(message_id)
            number += 1
            time.sleep(self.pause)
        connection.close()

    def _consume(self) -> None:
        connection = self._connect()
        channel = connection.channel()
        channel.basic_qos(prefetch_count=50)

        def on_message(ch: object, method: pika.spec.Basic.Deliver, props: object, body: bytes) -> None:
            self.received.append(body.decode())
            channel.basic_ack(method.delivery_tag)

        channel.basic_consume(self.queue, on_message)
        while not self._stop_consuming.is_set():
            connection.process_data_events(0.05)
        connection.close()

    @property
    def confirmed_count(self) -> int:
        return sum(len(ids) for ids in self.confirmed)

    def stop(self, drain_timeout: float = 20.0) -> None:
        """Stop publishing, let the consumer catch up with every confirmed message, stop it."""
        self._stop_publishing.set()
        for thread in self._threads[1:]:
            thread.join(timeout=15)
        expected = self.confirmed_count
        deadline = time.monotonic() + drain_timeout
        while len(self.received) < expected and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        time.sleep(0.2)  # a duplicate would arrive now
        self._stop_consuming.set()
        self._threads[0].join(timeout=10)

    def verify(self) -> None:
        assert not self.errors, f"a well-behaved client failed: {self.errors!r}"
        confirmed = [message_id for ids in self.confirmed for message_id in ids]
        assert confirmed, "the good clients published nothing"
        duplicates = len(self.received) - len(set(self.received))
        assert duplicates == 0, f"{duplicates} messages delivered more than once"
        missing = set(confirmed) - set(self.received)
        assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
