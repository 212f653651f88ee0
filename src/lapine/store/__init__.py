"""Persistence: definitions and queued messages. The embedded default is SQLite (sqlite/).

The broker talks to the Store interface (base.py, which states the threading contract); the data
directory and its lock are in datadir.py. How the broker is meant to use it:

Startup, before listening::

    store = SqliteStore(config.data_dir or default_data_dir(), notify=loop.call_soon_threadsafe,
                        on_error=broker.store_failed, on_recover=broker.store_recovered)
    definitions = store.load_definitions()      # empty on a first start: put the defaults
    recovered = store.recover_queues()          # per queue id: count, bytes, first/last seq
    # per durable queue: next seq = last_seq + 1 (0 if empty); the first page, blocking is fine
    # here: store.read_messages(queue_id, -1, window); m.delivered -> redelivered=True;
    # Message(m.exchange.decode("utf-8", "surrogateescape"), ...) as the channel decodes them.

Declarations: ``put_queue`` returns the id every message operation takes; call it for
non-durable queues too (no disk write) if their backlog may be paged. Give durable declarations a
callback and send declare-ok from it (durable when the client hears back, without blocking the
loop); without one the call blocks for a commit. The store persists what it is given: bindings
only when source and destination are both durable, as RabbitMQ does.

Publishing: for a persistent message routed to a durable queue, ``enqueue``, once per
queue, with ``message.exchange_bytes``, ``message.routing_key_bytes``,
``header_payload`` and ``body``. For publisher confirms, collect the delivery tags that touched the
store while handling one read from the socket and call ``submit_barrier`` once; send basic.ack
(multiple) from its callback: the confirm then costs one group commit, and never comes before
the fsync. After a storage error on_error runs and no callback of the work it caught ever
does, so nothing unwritten is confirmed; what to tell clients (nack, channel error) is the
broker's call. The store retries that work until it commits, then on_recover runs.

Consuming: ``mark_delivered`` when an on-disk message goes to a consumer that must ack (lazily,
per tick; it only makes a crash bring it back redelivered); ``ack`` when it leaves the queue for
good: basic.ack, reject/nack without requeue, no-ack delivery, TTL expiry, max-length drop,
dead-lettering (the dead-lettered copy is a new enqueue in its new queue). A requeue needs
nothing: the message never left the disk. ``purge`` and ``delete_queue`` follow queue.purge and
queue.delete.

Paging: keep at most a window of messages (count and bytes) in memory per queue. Past it, store
the message (``persistent=False`` for transient ones: they go to transient.db, never fsynced,
gone at restart) and keep only its seq. Reads see everything submitted before them, so the
message can leave memory at once. When the window runs low, issue one ``read_messages_async``
(after_seq = the last seq in memory, with ``max_bytes``) and append the page when it comes back.

Flow control: ``store.backlog`` counts operations not yet committed; block publishers while it
is high, as RabbitMQ's credit flow would, so that memory stays bounded when the disk lags.

Shutdown: ``close()`` commits what was submitted and releases the data directory.
"""

from lapine.store.base import (
    BindingDef,
    DataDirectoryInUseError,
    Definitions,
    ExchangeDef,
    GlobalParameterDef,
    ParameterDef,
    PermissionDef,
    PolicyDef,
    QueueDef,
    QueueRecovery,
    QueueStats,
    Store,
    StoredMessage,
    StoreError,
    StoreFailedError,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)
from lapine.store.datadir import DataDirectory, default_data_dir
from lapine.store.sqlite import SqliteStore


def open_store(data_dir: str | None = None, **kwargs: object) -> Store:
    """Open the embedded store in ``data_dir`` (default: default_data_dir())."""
    return SqliteStore(data_dir or default_data_dir(), **kwargs)  # type: ignore[arg-type]


__all__ = [
    "BindingDef",
    "DataDirectory",
    "DataDirectoryInUseError",
    "Definitions",
    "ExchangeDef",
    "GlobalParameterDef",
    "ParameterDef",
    "PermissionDef",
    "PolicyDef",
    "QueueDef",
    "QueueRecovery",
    "QueueStats",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreFailedError",
    "StoredMessage",
    "TopicPermissionDef",
    "UserDef",
    "VHostDef",
    "default_data_dir",
    "open_store",
]
