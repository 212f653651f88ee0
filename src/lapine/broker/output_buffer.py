"""What one client connection (AMQP or MQTT) has to send, gathered until the transport takes it.

The transport is woken when the first piece arrives and takes everything at once, one write per
loop tick. Two high-water marks keep that output bounded:

* ``OUTPUT_PER_TICK``: past it, this tick's write is big enough and the connection is no longer
  *writable*: queues stop delivering to it until the transport has taken the output, so that one
  busy consumer's burst neither starves other sockets nor builds one giant buffer. The socket's own
  back-pressure (pause_writing) makes it not writable too.
* ``unread_limit`` (AMQP only): what the client leaves unread, ours plus what the transport still
  holds (``pending``). Past it the connection's requests wait (``on_unread``): a client that does
  not read what we send cannot make us buffer without bound. Deliveries stopped long before, so
  this is reached only by replies (basic.get after basic.get of a big message).
"""

from __future__ import annotations

from collections.abc import Callable

# Output gathered for one socket write; past it, deliveries to this connection wait a tick.
OUTPUT_PER_TICK = 256 * 1024


class OutputBuffer:
    __slots__ = (
        "_on_unread",
        "_socket_full",
        "_tick_full",
        "_wakeup",
        "_writable_changed",
        "pending",
        "pieces",
        "size",
        "unread_limit",
        "writable",
    )

    def __init__(
        self,
        wakeup: Callable[[], None],
        writable_changed: Callable[[bool], None],
        unread_limit: int = 0,
        on_unread: Callable[[], None] | None = None,
    ) -> None:
        self._wakeup = wakeup  # the transport: there is output to take
        self._writable_changed = writable_changed  # deliveries stop or go on
        self.pieces: list[bytes] = []  # gathered since the transport last took the output
        self.size = 0  # bytes in ``pieces``
        self.writable = True
        self._socket_full = False
        self._tick_full = False
        # 0: no limit. ``on_unread`` is called whenever output is found past it.
        self.unread_limit = unread_limit
        self._on_unread = on_unread
        self.pending = 0  # what the transport still has to write, as it last told us

    def send(self, data: bytes) -> None:
        pieces = self.pieces
        if not pieces:
            self._wakeup()
        pieces.append(data)
        self.size += len(data)
        if self.size > OUTPUT_PER_TICK:
            self._past_tick_share()

    def _past_tick_share(self) -> None:
        if not self._tick_full:
            self._tick_full = True
            self._update_writable()
        if self.unread_limit and self.size + self.pending > self.unread_limit:
            assert self._on_unread is not None
            self._on_unread()

    def insert(self, position: int, data: bytes) -> None:
        """``data`` goes ahead of what was sent since ``len(pieces)`` was ``position``."""
        if position >= len(self.pieces):
            self.send(data)
            return
        self.pieces.insert(position, data)
        self.size += len(data)

    def cut(self, position: int) -> list[bytes]:
        """Take back what was sent since ``len(pieces)`` was ``position`` (to send it later)."""
        pieces = self.pieces
        taken = pieces[position:]
        del pieces[position:]
        self.size -= sum(len(data) for data in taken)
        return taken

    def take(self) -> bytes:
        """Everything gathered, for one write."""
        data = b"".join(self.pieces)
        self.pieces.clear()
        self.size = 0
        return data

    def written(self) -> None:
        """The transport took the output: deliveries held back for this tick may go on."""
        if self._tick_full:
            self._tick_full = False
            self._update_writable()

    def set_socket_writable(self, writable: bool) -> None:
        """Back-pressure from the socket: no deliveries until it drains."""
        self._socket_full = not writable
        self._update_writable()

    def set_pending(self, size: int) -> None:
        """What the transport still has to write (its buffer)."""
        self.pending = size
        if self.over_unread_limit():
            assert self._on_unread is not None
            self._on_unread()

    def over_unread_limit(self) -> bool:
        return bool(self.unread_limit) and self.size + self.pending > self.unread_limit

    def _update_writable(self) -> None:
        writable = not (self._socket_full or self._tick_full)
        if writable != self.writable:
            self.writable = writable
            self._writable_changed(writable)
