"""AMQP exceptions as RabbitMQ raises them: a reply code, and a text that starts with the code's name.

A ChannelError closes one channel (channel.close); a ConnectionError closes the whole connection
(connection.close). The broker model raises them; the connection layer turns them into frames.
"""

from __future__ import annotations

from lapine.amqp.constants import INTERNAL_ERROR, REPLY_NAMES


class AMQPError(Exception):
    """An error that ends a channel or a connection with a reply code and text.

    ``text`` is the detail only; ``reply_text`` adds the code's name as RabbitMQ does:
    ``NOT_FOUND - no queue 'x' in vhost '/'``. ``class_id``/``method_id`` name the method that
    failed (0 when none did); the connection layer fills them in when they are left at 0.
    """

    def __init__(self, reply_code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(text)
        self.reply_code = reply_code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        name = REPLY_NAMES.get(self.reply_code, REPLY_NAMES[INTERNAL_ERROR])
        text = f"{name} - {self.text}".encode()
        if len(text) > 255:
            # A shortstr holds 255 bytes; RabbitMQ keeps 252 of them and marks the cut with "...".
            text = text[:252].decode("utf-8", "ignore").encode() + b"..."
        return text.decode()


class ChannelError(AMQPError):
    """A soft error: the channel is closed, the connection lives on."""


class ConnectionError(AMQPError):
    """A hard error: the whole connection is closed."""


class FrameError(ConnectionError):
    """Bytes that do not form a valid frame or method (501 FRAME_ERROR, 502 SYNTAX_ERROR, ...)."""
