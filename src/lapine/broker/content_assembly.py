"""A channel's part that assembles a basic.publish from its frames (the publish hot path).

A publish is a method frame, then a content header, then body frames. RabbitMQ's assembler
(rabbit_command_assembler) refuses frames out of order with 505 UNEXPECTED_FRAME and more body
than the header announced with 501; a message over max_message_size is refused with 406. A
whole message that came in one read skips the assembly state (publish_whole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lapine.amqp import spec
from lapine.amqp.constants import FRAME_ERROR, NOT_IMPLEMENTED, PRECONDITION_FAILED, UNEXPECTED_FRAME
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.amqp.frames import decode_publish
from lapine.broker.message import Message

# RabbitMQ's words (rabbit_command_assembler) for content frames out of order.
NO_METHOD = "expected method frame, got non method frame instead"
_NO_HEADER = "expected content header for class 60, got non content header frame instead"
_NO_BODY = "expected content body, got non content body frame instead"


class ContentAssembly:
    """Channel's part: the publish in progress, from its method frame to its last body frame."""

    def _init_assembly(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._publish: tuple[str, str, bool] | None = None
        self._header: bytes | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._body_remaining = 0

    if TYPE_CHECKING:

        def publish(self, message: Message, mandatory: bool) -> None: ...

    def _content_expected(self) -> None:
        """A frame other than the content header or body that the publish in progress needs."""
        if self._header is None:
            raise ConnectionError(UNEXPECTED_FRAME, _NO_HEADER, *spec.BasicPublish.IDS)
        raise ConnectionError(UNEXPECTED_FRAME, _NO_BODY, *spec.BasicPublish.IDS)

    def publish_whole(self, method_payload: bytes, header: bytes, body: bytes) -> None:
        """A publish whose header and body came in the same read: no assembly state needed."""
        if self._publish is not None:
            self._content_expected()
        exchange, routing_key, mandatory, immediate = decode_publish(method_payload)
        if immediate:
            raise ConnectionError(NOT_IMPLEMENTED, "immediate=true", *spec.BasicPublish.IDS)
        if len(body) > self._max_message_size:
            self._refuse_size(len(body))
        self.publish(Message(exchange, routing_key, header, body), mandatory)

    def _refuse_size(self, body_size: int) -> None:
        raise ChannelError(
            PRECONDITION_FAILED,
            f"message size {body_size} is larger than configured max size {self._max_message_size}",
            *spec.BasicPublish.IDS,
        )

    def start_publish(self, exchange: str, routing_key: str, mandatory: bool, immediate: bool) -> None:
        if self._publish is not None:
            self._content_expected()
        if immediate:
            raise ConnectionError(NOT_IMPLEMENTED, "immediate=true", *spec.BasicPublish.IDS)
        self._publish = (exchange, routing_key, mandatory)

    def on_header(self, payload: bytes) -> None:
        if self._publish is None:
            raise ConnectionError(UNEXPECTED_FRAME, NO_METHOD)
        if self._header is not None:
            self._content_expected()
        if payload[:2] != b"\x00\x3c":
            class_id = int.from_bytes(payload[:2], "big")
            raise ConnectionError(
                UNEXPECTED_FRAME, f"expected content header for class 60, got one for class {class_id} instead",
                *spec.BasicPublish.IDS,
            )
        body_size = int.from_bytes(payload[4:12], "big")
        if body_size > self._max_message_size:
            self._publish = None
            self._refuse_size(body_size)
        self._header = bytes(payload)
        self._body_size = body_size
        self._body_remaining = body_size
        self._body = []
        if body_size == 0:
            self._finish_publish()

    def on_body(self, payload: bytes) -> None:
        if self._publish is None:
            raise ConnectionError(UNEXPECTED_FRAME, NO_METHOD)
        if self._header is None:
            self._content_expected()
        self._body.append(bytes(payload))
        self._body_remaining -= len(payload)
        if self._body_remaining <= 0:
            if self._body_remaining < 0:
                raise ConnectionError(FRAME_ERROR, f"body frames exceed the declared body size {self._body_size}")
            self._finish_publish()

    def _finish_publish(self) -> None:
        exchange_name, routing_key, mandatory = self._publish  # type: ignore[misc]
        header = self._header
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._publish = None
        self._header = None
        self._body = []
        assert header is not None
        message = Message(exchange_name, routing_key, header, body)
        self.publish(message, mandatory)
