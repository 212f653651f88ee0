"""The store's interface: what the broker persists, and the threading contract it can rely on.

Threading contract (every implementation keeps it):

- One thread, the *owner* (the broker's event-loop thread), calls every method. Nothing is
  thread-safe beyond that, because locking every ``enqueue`` would tax the hot path.
- Message operations (``enqueue``, ``ack``, ``mark_delivered``, ``purge``) and definition changes
  given a ``callback`` never block: they are queued, in submission order, for a background writer
  that commits them in batches (group commit).
- Completion callbacks run on the owner thread, through the ``notify`` function given at
  construction (the broker passes ``loop.call_soon_threadsafe``), only after everything submitted
  before them is durable on disk, and in submission order.
- Calls without a callback that return a result (``read_messages``, ``queue_stats``,
  ``recover_queues``, ``load_definitions``, definition changes without a callback, ``sync``) block
  the owner until the writer has done them; use them at startup, in tests and in tools.
- Reads see everything submitted before them, committed or not (they are queued behind it).
- After a storage failure the store is *failed* until a retry of the same work commits:
  ``on_error(exc)`` is called once on the owner thread, and ``on_recover()`` once the retry has
  committed. Meanwhile message operations (``enqueue``, ``ack``, ``mark_delivered``, ``purge``)
  and non-durable queue registrations are still taken and are written by that retry; every call
  that would answer someone (a barrier, a blocking call, a durable definition change, a read)
  raises StoreFailedError. The callbacks of work caught by the failure never run, nor do its
  reads, and a blocking call in it raises at once and is not retried: the broker has told the
  clients of the failure by then, and a late confirm would contradict a nack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# A completion callback; what it returns is ignored.
Callback = Callable[[], object]
# Runs a callback on the owner thread; called from any thread (loop.call_soon_threadsafe).
Notify = Callable[[Callable[[], object]], object]


class StoreError(Exception):
    """Base class of the store's errors."""


class StoreFailedError(StoreError):
    """The store hit a storage error earlier and accepts no more work; see ``__cause__``."""


class DataDirectoryInUseError(StoreError):
    """Another process holds the data directory's lock."""


# --- definitions ----------------------------------------------------------------------------


@dataclass
class VHostDef:
    name: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    default_queue_type: str | None = None


@dataclass
class UserDef:
    name: str
    password_hash: str
    hashing_algorithm: str
    tags: list[str] = field(default_factory=list)


@dataclass
class PermissionDef:
    user: str
    vhost: str
    configure: str
    write: str
    read: str


@dataclass
class TopicPermissionDef:
    user: str
    vhost: str
    exchange: str
    write: str
    read: str


@dataclass
class ExchangeDef:
    vhost: str
    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueueDef:
    vhost: str
    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    # Handed out by the store (put_queue's return value); ignored when passed to put_queue.
    queue_id: int = 0


@dataclass
class BindingDef:
    vhost: str
    source: str
    destination: str
    destination_type: str  # "queue" or "exchange"
    routing_key: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyDef:
    vhost: str
    name: str
    pattern: str
    apply_to: str
    definition: dict[str, Any]
    priority: int = 0


@dataclass
class ParameterDef:
    """A runtime parameter (federation upstreams, shovels, vhost limits, ...)."""

    vhost: str
    component: str
    name: str
    value: Any


@dataclass
class GlobalParameterDef:
    name: str
    value: Any


@dataclass
class Definitions:
    vhosts: list[VHostDef] = field(default_factory=list)
    users: list[UserDef] = field(default_factory=list)
    permissions: list[PermissionDef] = field(default_factory=list)
    topic_permissions: list[TopicPermissionDef] = field(default_factory=list)
    exchanges: list[ExchangeDef] = field(default_factory=list)
    queues: list[QueueDef] = field(default_factory=list)
    bindings: list[BindingDef] = field(default_factory=list)
    policies: list[PolicyDef] = field(default_factory=list)
    parameters: list[ParameterDef] = field(default_factory=list)
    global_parameters: list[GlobalParameterDef] = field(default_factory=list)


# --- messages -------------------------------------------------------------------------------


class StoredMessage(NamedTuple):
    seq: int
    exchange: bytes  # the exchange and routing key it was published with, as on the wire
    routing_key: bytes
    header: bytes  # the content-header frame payload, as it arrived
    body: bytes
    delivered: bool  # handed to a consumer at least once: comes back redelivered
    expires: int | None  # as given to enqueue


@dataclass(frozen=True, slots=True)
class QueueRecovery:
    """What a durable queue holds on disk at startup, found without reading message bodies."""

    queue_id: int
    count: int
    bytes: int  # body bytes, as RabbitMQ's message_bytes and max-length-bytes count them
    first_seq: int | None  # None when the queue is empty
    last_seq: int | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    count: int
    bytes: int  # body bytes


class Store(ABC):
    """Persistence for definitions and queued messages; see the module docstring for threading."""

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    @abstractmethod
    def failed(self) -> BaseException | None:
        """The storage error the store is retrying its writes after, or None while it is healthy."""

    @property
    @abstractmethod
    def backlog(self) -> int:
        """Operations submitted but not yet committed; apply publisher flow control when high."""

    @abstractmethod
    def close(self) -> None:
        """Commit everything submitted, stop the writer, release the data directory (blocking)."""

    # --- completion --------------------------------------------------------------------------

    @abstractmethod
    def submit_barrier(self, callback: Callback) -> None:
        """Run ``callback`` on the owner thread once everything submitted so far is durable."""

    @abstractmethod
    def sync(self) -> None:
        """Block until everything submitted so far is durable."""

    # --- definitions -------------------------------------------------------------------------
    # With callback=None these block until durable; with a callback they return at once and the
    # callback runs (on the owner thread) once the change is durable.

    @abstractmethod
    def load_definitions(self) -> Definitions: ...

    @abstractmethod
    def put_vhost(self, vhost: VHostDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_vhost(self, name: str, callback: Callback | None = None) -> None:
        """Delete a vhost and everything in it: exchanges, queues and their messages, bindings,
        permissions, policies, parameters."""

    @abstractmethod
    def put_user(self, user: UserDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_user(self, name: str, callback: Callback | None = None) -> None:
        """Delete a user and its permissions."""

    @abstractmethod
    def put_permission(self, permission: PermissionDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_permission(self, user: str, vhost: str, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def put_topic_permission(self, permission: TopicPermissionDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_topic_permission(
        self, user: str, vhost: str, exchange: str, callback: Callback | None = None
    ) -> None: ...

    @abstractmethod
    def put_exchange(self, exchange: ExchangeDef, callback: Callback | None = None) -> None:
        """Persist a durable exchange; a non-durable one is not written (the callback still runs)."""

    @abstractmethod
    def delete_exchange(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        """Delete an exchange and the bindings from it and to it."""

    @abstractmethod
    def put_queue(self, queue: QueueDef, callback: Callback | None = None) -> int:
        """Register a queue and return its id for the message operations.

        A durable queue is persisted; a non-durable one only gets an id, so that its backlog can
        be paged to disk too (its messages are dropped at the next start). Putting an existing
        queue again updates it and returns the same id.
        """

    @abstractmethod
    def delete_queue(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        """Delete a queue, the bindings to it and all its messages."""

    @abstractmethod
    def queue_id(self, vhost: str, name: str) -> int | None:
        """The id of a registered queue, or None (a dict lookup; never blocks)."""

    @abstractmethod
    def put_binding(self, binding: BindingDef, callback: Callback | None = None) -> None:
        """Persist a binding. RabbitMQ persists a binding when its source and destination are
        both durable; deciding that is the caller's job."""

    @abstractmethod
    def delete_binding(self, binding: BindingDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def put_policy(self, policy: PolicyDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_policy(self, vhost: str, name: str, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def put_parameter(self, parameter: ParameterDef, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def delete_parameter(self, vhost: str, component: str, name: str, callback: Callback | None = None) -> None: ...

    @abstractmethod
    def put_global_parameter(self, parameter: GlobalParameterDef, callback: Callback | None = None) -> None: ...

    # --- messages (never block) --------------------------------------------------------------

    @abstractmethod
    def enqueue(
        self,
        queue_id: int,
        seq: int,
        exchange: bytes,
        routing_key: bytes,
        header: bytes,
        body: bytes,
        *,
        persistent: bool = True,
        expires: int | None = None,
    ) -> None:
        """Store one message.

        ``seq`` is the queue's publish-order number, unique in the queue until it is purged or
        deleted. ``exchange`` and ``routing_key`` are the publish's, encoded as on the wire
        (the broker's Message caches them so), shortstrs of 255 bytes at most. ``expires`` is
        kept for the broker and given back as is: an int in [0, 2**46), for instance the queue
        TTL's deadline in ms since the epoch. Persistent messages of durable queues survive a
        restart; all others are stored only to page a backlog out of memory and are dropped at
        startup.
        """

    @abstractmethod
    def ack(self, queue_id: int, seqs: Iterable[int]) -> None:
        """Remove messages (acked, expired, dead-lettered, ...). Unknown seqs are ignored."""

    @abstractmethod
    def mark_delivered(self, queue_id: int, seqs: Iterable[int]) -> None:
        """Flag messages as handed to a consumer: after a restart they come back redelivered."""

    @abstractmethod
    def purge(self, queue_id: int) -> None:
        """Remove every message of the queue."""

    # --- reads -------------------------------------------------------------------------------

    @abstractmethod
    def read_messages_async(
        self,
        queue_id: int,
        after_seq: int,
        limit: int,
        callback: Callable[[list[StoredMessage]], None],
        max_bytes: int | None = None,
    ) -> None:
        """Page in the messages with seq > after_seq, in seq order: at most ``limit`` of them, and
        once their bodies reach ``max_bytes`` no more (the first always comes, however large).
        The list is passed to ``callback`` on the owner thread."""

    @abstractmethod
    def read_messages(
        self, queue_id: int, after_seq: int, limit: int, max_bytes: int | None = None
    ) -> list[StoredMessage]:
        """Blocking ``read_messages_async``: for startup, tests and tools."""

    @abstractmethod
    def queue_stats(self, queue_id: int) -> QueueStats:
        """Count and size of a queue's stored messages (blocking; scans the queue's rows)."""

    @abstractmethod
    def recover_queues(self) -> dict[int, QueueRecovery]:
        """Per durable queue id: what it holds on disk. Blocking; meant for startup."""
