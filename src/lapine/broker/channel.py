"""A channel: one AMQP session inside a connection, and the handlers for its methods.

Each handler turns one method into calls on the vhost model and answers as RabbitMQ does. The
channel also keeps what is per session: delivery tags and unacked deliveries, qos, consumers,
publisher-confirm sequence numbers, and the open transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lapine.amqp import spec
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.amqp.frames import content_frames, decode_publish, encode_deliver_frames
from lapine.amqp.properties import malformed_properties, properties_are_valid
from lapine.broker import direct_reply_to, names, publish_checks
from lapine.broker.consumer import Consumer
from lapine.broker.exchange import Exchange
from lapine.broker.message import Message
from lapine.broker.publish_checks import INSPECT_FLAGS_HIGH, REPLY_TO_FLAG_HIGH, USER_ID_FLAG
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.queue_types.declare_arguments import consume_problem
from lapine.broker.stats import MessageStats

if TYPE_CHECKING:
    from lapine.auth.permissions import TopicPermission
    from lapine.broker.connection import Connection
    from lapine.broker.scheduler import Timer

log = logging.getLogger("lapine.channel")

ACCESS_REFUSED = 403
NOT_FOUND = 404
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
COMMAND_INVALID = 503
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

# The methods that may write durable exchanges, queues or bindings (broker/persistence.py).
_DEFINITION_METHODS = (
    spec.ExchangeDeclare.INDEX,
    spec.ExchangeDelete.INDEX,
    spec.ExchangeBind.INDEX,
    spec.ExchangeUnbind.INDEX,
    spec.QueueDeclare.INDEX,
    spec.QueueBind.INDEX,
    spec.QueueUnbind.INDEX,
    spec.QueueDelete.INDEX,
)

# RabbitMQ's words (rabbit_command_assembler) for content frames out of order.
NO_METHOD = "expected method frame, got non method frame instead"
_NO_HEADER = "expected content header for class 60, got non content header frame instead"
_NO_BODY = "expected content body, got non content body frame instead"


class Delivery:
    """A message handed out with an ack expected: where it came from, and to whom."""

    __slots__ = ("consumer", "delivered_at", "entry", "queue")

    def __init__(self, entry: QueuedMessage, queue: Queue, consumer: Consumer | None, delivered_at: float) -> None:
        self.entry = entry
        self.queue = queue
        self.consumer = consumer
        self.delivered_at = delivered_at


class Channel:
    def __init__(self, connection: Connection, channel_id: int) -> None:
        self.connection = connection
        self.vhost = connection.vhost
        self.id = channel_id
        self.closing = False  # channel.close sent, waiting for close-ok
        self.closed = False
        self.active = True
        self.consumers: dict[str, Consumer] = {}
        # Consumers with room of their own whose turn came while this channel could take no
        # deliveries (socket full, global prefetch used up), in that order: back to their queues
        # once it can.
        self._parked: dict[Consumer, None] = {}
        self._max_consumers = connection.broker.config.consumer_max_per_channel
        self.unacked: dict[int, Delivery] = {}
        self._next_delivery_tag = 1
        self.prefetch_count = 0  # applies to consumers created after it (global=false)
        self.prefetch_global = 0  # shared by the whole channel (global=true)
        self.last_queue_name = ""
        # Publisher confirms: sequence numbers of publishes, and how far the client has been told.
        self.confirm_mode = False
        self.publish_seq = 0
        self.confirmed_seq = 0
        self._nacks: list[int] = []
        self._confirm_requested = 0
        self._durable_since_flush = False
        self._confirms_waiting = 0
        self.tx: Transaction | None = None
        self.stats = MessageStats()
        self._now = self.vhost.scheduler.time
        self._max_message_size = connection.broker.config.max_message_size
        self._message_sizes = connection.broker.message_sizes
        self._timeout_timer: Timer | None = None
        self.reply_to: direct_reply_to.ReplyConsumer | None = None
        # Exchanges this channel may publish to, valid while the permissions' version holds.
        self._permissions = connection.broker.permissions
        self._publish_exchanges: dict[str, Exchange] = {}
        # Of those, the topic exchanges whose topic permission limits this user's routing keys.
        self._topic_write: dict[str, TopicPermission] = {}
        self._publish_version = -1
        # Content assembly for the publish in progress.
        self._publish: tuple[str, str, bool] | None = None
        self._header: bytes | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._body_remaining = 0
        self.handlers: dict[int, Callable[[Any], None]] = {
            spec.ChannelFlow.INDEX: self.on_flow,
            spec.ExchangeDeclare.INDEX: self.on_exchange_declare,
            spec.ExchangeDelete.INDEX: self.on_exchange_delete,
            spec.ExchangeBind.INDEX: self.on_exchange_bind,
            spec.ExchangeUnbind.INDEX: self.on_exchange_unbind,
            spec.QueueDeclare.INDEX: self.on_queue_declare,
            spec.QueueBind.INDEX: self.on_queue_bind,
            spec.QueueUnbind.INDEX: self.on_queue_unbind,
            spec.QueuePurge.INDEX: self.on_queue_purge,
            spec.QueueDelete.INDEX: self.on_queue_delete,
            spec.BasicQos.INDEX: self.on_basic_qos,
            spec.BasicConsume.INDEX: self.on_basic_consume,
            spec.BasicCancel.INDEX: self.on_basic_cancel,
            spec.BasicGet.INDEX: self.on_basic_get,
            spec.BasicAck.INDEX: self.on_basic_ack,
            spec.BasicReject.INDEX: self.on_basic_reject,
            spec.BasicNack.INDEX: self.on_basic_nack,
            spec.BasicRecover.INDEX: self.on_basic_recover,
            spec.BasicRecoverAsync.INDEX: self.on_basic_recover_async,
            spec.TxSelect.INDEX: self.on_tx_select,
            spec.TxCommit.INDEX: self.on_tx_commit,
            spec.TxRollback.INDEX: self.on_tx_rollback,
            spec.ConfirmSelect.INDEX: self.on_confirm_select,
            spec.AccessRequest.INDEX: self.on_access_request,
        }
        for index in _DEFINITION_METHODS:
            self.handlers[index] = self._answered_when_durable(self.handlers[index])

    def __repr__(self) -> str:
        return f"<Channel {self.id} of {self.connection!r}>"

    # --- permissions ---------------------------------------------------------------------------

    def authorize(self, kind: str, resource: str, name: str) -> None:
        """RabbitMQ's check: may this user configure/write/read the named exchange or queue?"""
        broker = self.connection.broker
        broker.permissions.check(self.connection.username, self.vhost.name, kind, resource, name or "amq.default")

    # --- output ------------------------------------------------------------------------------

    def send_method(self, method: spec.Method) -> None:
        self.connection.send_method(self.id, method)

    def deliver(
        self, consumer: Consumer | direct_reply_to.ReplyConsumer, entry: QueuedMessage, queue: Queue | None
    ) -> None:
        tag = self._next_delivery_tag
        message = entry.message
        # Encoded before anything is recorded: a message that cannot be sent is not left unacked.
        try:
            frames = encode_deliver_frames(
                self.id,
                consumer.tag_bytes,
                tag,
                entry.redelivered,
                message.exchange_bytes,
                message.routing_key_bytes,
                message.header_payload,
                message.body,
                self.connection.frame_max,
            )
        except Exception:
            self._undeliverable(entry, queue, consumer.no_ack, consumer)
            return
        self._next_delivery_tag = tag + 1
        if consumer.no_ack:
            self.stats.deliver_no_ack += 1
            if queue is not None:
                queue.stats.deliver_no_ack += 1
        else:
            assert queue is not None and isinstance(consumer, Consumer)
            self.unacked[tag] = Delivery(entry, queue, consumer, self._now())
            if self._timeout_timer is None:
                self._watch_timeouts()
            self.stats.deliver += 1
            queue.stats.deliver += 1
        if entry.redelivered:
            self.stats.redeliver += 1
        self.connection.send(frames)

    def _undeliverable(
        self,
        entry: QueuedMessage,
        queue: Queue | None,
        no_ack: bool,
        consumer: Consumer | direct_reply_to.ReplyConsumer | None = None,
    ) -> None:
        """A message whose delivery cannot be encoded is dropped, with an error logged.

        Only a name too long for a shortstr (or not UTF-8) can fail, and entry points refuse
        those; should one get past them, dropping is the one safe end. Dead-lettering would
        carry the same routing key on to the next queue, and as a rejection it would pass the
        cycle check, so two queues dead-lettering to each other would loop. The consumer, its
        connection and the queue's other messages are not affected.
        """
        log.exception(
            "dropped a message from %r: its delivery on %r cannot be encoded (exchange %r, routing key %r)",
            queue,
            self,
            entry.message.exchange[:64],
            entry.message.routing_key[:64],
        )
        if no_ack or queue is None:
            return  # the queue has already let it go
        if isinstance(consumer, Consumer):
            consumer.unacked -= 1
        queue.settled([entry])

    def send_content(self, method: spec.Method, message: Message) -> None:
        self.connection.send(
            content_frames(self.id, method, 60, message.raw_properties, message.body, self.connection.frame_max)
        )

    # --- method dispatch ---------------------------------------------------------------------

    def _answered_when_durable(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """A method that may change durable definitions: its answer waits until they are on disk."""

        def handle(method: spec.Method) -> None:
            persistence = self.connection.broker.persistence
            if persistence is None:
                handler(method)
                return
            writes, position = persistence.writes, len(self.connection.output)
            handler(method)
            if persistence.writes != writes:
                self.connection.answer_when_durable(position)

        return handle

    def handle_method(self, method: spec.Method) -> None:
        if self._publish is not None:
            self._content_expected()
        handler = self.handlers.get(method.INDEX)
        if handler is None:
            raise ConnectionError(COMMAND_INVALID, "unimplemented method", method.CLASS_ID, method.METHOD_ID)
        try:
            handler(method)
        except ChannelError as error:
            if not error.class_id:
                error.class_id, error.method_id = method.CLASS_ID, method.METHOD_ID
            raise

    # --- content assembly (the publish hot path) ---------------------------------------------

    def _content_expected(self) -> None:
        """A frame other than the content header or body that the publish in progress needs."""
        if self._header is None:
            raise ConnectionError(UNEXPECTED_FRAME, _NO_HEADER, 60, 40)
        raise ConnectionError(UNEXPECTED_FRAME, _NO_BODY, 60, 40)

    def publish_whole(self, method_payload: bytes, header: bytes, body: bytes) -> None:
        """A publish whose header and body came in the same read: no assembly state needed."""
        if self._publish is not None:
            self._content_expected()
        exchange, routing_key, mandatory, immediate = decode_publish(method_payload)
        if immediate:
            raise ConnectionError(NOT_IMPLEMENTED, "immediate=true", 60, 40)
        if len(body) > self._max_message_size:
            self._refuse_size(len(body))
        self.publish(Message(exchange, routing_key, header, body), mandatory)

    def _refuse_size(self, body_size: int) -> None:
        raise ChannelError(
            PRECONDITION_FAILED,
            f"message size {body_size} is larger than configured max size {self._max_message_size}",
            60,
            40,
        )

    def start_publish(self, exchange: str, routing_key: str, mandatory: bool, immediate: bool) -> None:
        if self._publish is not None:
            self._content_expected()
        if immediate:
            raise ConnectionError(NOT_IMPLEMENTED, "immediate=true", 60, 40)
        self._publish = (exchange, routing_key, mandatory)

    def on_header(self, payload: bytes) -> None:
        if self._publish is None:
            raise ConnectionError(UNEXPECTED_FRAME, NO_METHOD)
        if self._header is not None:
            self._content_expected()
        if payload[:2] != b"\x00\x3c":
            class_id = int.from_bytes(payload[:2], "big")
            raise ConnectionError(
                UNEXPECTED_FRAME, f"expected content header for class 60, got one for class {class_id} instead", 60, 40
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

    def publish(self, message: Message, mandatory: bool) -> None:
        exchange = self._publish_exchanges.get(message.exchange)
        if exchange is None or exchange.deleted or self._publish_version != self._permissions.version:
            exchange = self._publish_exchange(message.exchange)
        header = message.header_payload
        if not properties_are_valid(header):
            # Consumers get the header as it came: one that does not parse is refused here.
            raise malformed_properties(header)
        # Properties matter here only when one of these flags is set; most messages skip it all.
        if header[12] & INSPECT_FLAGS_HIGH or header[13] & USER_ID_FLAG:
            self._inspect_properties(message)
        if self._topic_write and exchange.name in self._topic_write:
            publish_checks.check_topic_write(self._permissions, self._topic_write[exchange.name], message)
        self.stats.publish += 1
        self._message_sizes.observe(len(message.body))
        if self.confirm_mode:
            self.publish_seq += 1
            self.stats.received_confirm += 1
        if self.tx is not None:
            self.stats.received_confirm += 1
            self.tx.publishes.append((exchange, message, mandatory))
            return
        accepted = self.route_and_enqueue(exchange, message, mandatory)
        if self.confirm_mode:
            if not accepted:
                self._nacks.append(self.publish_seq)
            if message.durably_written:
                self._durable_since_flush = True
            self.connection.confirm_pending(self)

    def _publish_exchange(self, name: str) -> Exchange:
        """The exchange a publish names, checked (write permission, exists, not internal) and cached."""
        if self._publish_version != self._permissions.version:
            self._publish_exchanges.clear()
            self._topic_write.clear()
            self._publish_version = self._permissions.version
        self._topic_write.pop(name, None)
        self.authorize("write", "exchange", name)
        exchange = publish_checks.publish_exchange(self.vhost, name)
        self._publish_exchanges[name] = exchange
        topic = self._topic_permission(exchange)
        if topic is not None:
            self._topic_write[name] = topic
        return exchange

    def _topic_permission(self, exchange: Exchange) -> TopicPermission | None:
        return publish_checks.topic_permission(self._permissions, self.connection.username, exchange)

    def _authorize_topic_read(self, exchange: Exchange | None, routing_key: str) -> None:
        """A binding from a topic exchange: its routing key against the user's read pattern there."""
        topic = self._topic_permission(exchange) if exchange is not None else None
        if topic is not None:
            self._permissions.check_topic(topic, "read", routing_key)

    def _inspect_properties(self, message: Message) -> None:
        """The properties the broker acts on at publish: user-id, expiration, CC/BCC, and the
        direct reply-to a request names."""
        publish_checks.inspect_properties(message, self.connection.username)
        if message.header_payload[12] & REPLY_TO_FLAG_HIGH and message.properties.reply_to == direct_reply_to.QUEUE:
            if self.reply_to is None:
                raise ChannelError(PRECONDITION_FAILED, "fast reply consumer does not exist", 60, 40)
            self.reply_to.rewrite(message)

    def route_and_enqueue(self, exchange: Exchange, message: Message, mandatory: bool) -> bool:
        """Route and enqueue; False when a queue refused the message (its publisher gets a nack)."""
        if (
            exchange.is_default
            and message.routing_key.startswith(direct_reply_to.PREFIX)
            and direct_reply_to.deliver(self.vhost, message)
        ):
            return True
        routed, accepted = self.vhost.publish(exchange, message, self.connection)
        if not routed:
            if mandatory:
                self.stats.return_unroutable += 1
                self.send_content(
                    spec.BasicReturn(
                        reply_code=312,
                        reply_text="NO_ROUTE",
                        exchange=message.exchange,
                        routing_key=message.routing_key,
                    ),
                    message,
                )
            else:
                self.stats.drop_unroutable += 1
        return accepted

    def flush_confirms(self) -> None:
        """Confirm everything published since the last flush: at once, or, when a persistent
        message went to a durable queue (or an earlier confirm still waits), once the store says
        all of it is on disk. Confirms stay in order either way."""
        upto = self.publish_seq
        if upto <= self._confirm_requested:
            return
        self._confirm_requested = upto
        nacks, self._nacks = self._nacks, []
        store = self.connection.broker.store
        if store is not None and store.failed is not None and (self._durable_since_flush or self._confirms_waiting):
            # The disk failed: what needed it is nacked, never confirmed as if it were safe, and the
            # barriers still waiting will never complete.
            self._durable_since_flush = False
            self._confirms_waiting = 0
            first = self.confirmed_seq + 1
            self._confirm_through(upto, sorted({*nacks, *range(first, upto + 1)}))
            return
        if store is not None and (self._durable_since_flush or self._confirms_waiting):
            self._durable_since_flush = False
            self._confirms_waiting += 1
            self.connection.broker.submit_barrier(lambda: self._confirms_durable(upto, nacks))
            return
        self._confirm_through(upto, nacks)

    def store_failed(self) -> None:
        """The store died: confirms waiting for it will never come, so the publisher hears nack."""
        if self._confirms_waiting and not self.closed:
            self._confirms_waiting = 0
            first = self.confirmed_seq + 1
            self._confirm_through(self._confirm_requested, list(range(first, self._confirm_requested + 1)))

    def _confirms_durable(self, upto: int, nacks: list[int]) -> None:
        self._confirms_waiting -= 1
        if not self.closed:
            self._confirm_through(upto, nacks)

    def _confirm_through(self, upto: int, nacks: list[int]) -> None:
        """basic.ack (multiple where it can) up to ``upto``, with a basic.nack for each refused one."""
        first = self.confirmed_seq + 1
        if upto < first:
            return
        self.stats.confirm += upto - self.confirmed_seq
        self.confirmed_seq = upto
        for nacked in nacks:
            if nacked > first:
                self.send_method(spec.BasicAck(delivery_tag=nacked - 1, multiple=nacked - 1 > first))
            self.send_method(spec.BasicNack(delivery_tag=nacked, multiple=False, requeue=False))
            first = nacked + 1
        if upto >= first:
            self.send_method(spec.BasicAck(delivery_tag=upto, multiple=upto > first))

    # --- channel class -----------------------------------------------------------------------

    def on_flow(self, method: spec.ChannelFlow) -> None:
        if not method.active:
            raise ConnectionError(NOT_IMPLEMENTED, "active=false", 20, 20)
        self.send_method(spec.ChannelFlowOk(active=True))

    def on_access_request(self, method: spec.AccessRequest) -> None:
        self.send_method(spec.AccessRequestOk(ticket=1))

    # --- exchange class ----------------------------------------------------------------------

    def on_exchange_declare(self, method: spec.ExchangeDeclare) -> None:
        if not method.passive and method.exchange:
            self.authorize("configure", "exchange", method.exchange)
        self.vhost.declare_exchange(
            method.exchange,
            method.type,
            passive=method.passive,
            durable=method.durable,
            auto_delete=method.auto_delete,
            internal=method.internal,
            arguments=method.arguments,
        )
        if not method.nowait:
            self.send_method(spec.ExchangeDeclareOk())

    def on_exchange_delete(self, method: spec.ExchangeDelete) -> None:
        name = method.exchange
        if not name or name.startswith("amq."):
            raise ChannelError(
                ACCESS_REFUSED,
                "operation not permitted on the default exchange"
                if not name
                else f"deletion of system exchange '{name}' in vhost '{self.vhost.name}' not allowed",
            )
        self.authorize("configure", "exchange", name)
        self.vhost.delete_exchange(name, if_unused=method.if_unused)
        if not method.nowait:
            self.send_method(spec.ExchangeDeleteOk())

    def on_exchange_bind(self, method: spec.ExchangeBind) -> None:
        self.authorize("write", "exchange", method.destination)
        self.authorize("read", "exchange", method.source)
        destination = self.vhost.exchange(method.destination)
        source = self.vhost.exchange(method.source)
        self._authorize_topic_read(source, method.routing_key)
        self.vhost.bind(source, destination, method.routing_key, method.arguments)
        if not method.nowait:
            self.send_method(spec.ExchangeBindOk())

    def on_exchange_unbind(self, method: spec.ExchangeUnbind) -> None:
        destination = self.vhost.exchanges.get(method.destination)
        source = self.vhost.exchanges.get(method.source)
        self.authorize("write", "exchange", method.destination)
        self.authorize("read", "exchange", method.source)
        self._authorize_topic_read(source, method.routing_key)
        # RabbitMQ answers unbind-ok when either end is missing: the binding is gone either way.
        if source is not None and destination is not None:
            self.vhost.unbind(source, destination, method.routing_key, method.arguments)
        if not method.nowait:
            self.send_method(spec.ExchangeUnbindOk())

    # --- queue class -------------------------------------------------------------------------

    def _queue_name(self, name: str) -> str:
        """An empty queue name means the queue last declared on this channel, as in RabbitMQ."""
        if name:
            return name
        if not self.last_queue_name:
            raise ChannelError(NOT_FOUND, "no previously declared queue")
        return self.last_queue_name

    def on_queue_declare(self, method: spec.QueueDeclare) -> None:
        name = method.queue
        if method.passive:
            if name == direct_reply_to.QUEUE:
                self.send_method(spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=0))
                return
            # A passive declare does not expand the "last declared queue" shortcut.
            queue = self.vhost.declare_queue(name, self.connection, passive=True)
        else:
            if name.startswith("amq."):
                raise ChannelError(ACCESS_REFUSED, f"queue name '{name}' contains reserved prefix 'amq.*'")
            name = name or names.queue_name()
            self.authorize("configure", "queue", name)
            queue = self.vhost.declare_queue(
                name,
                self.connection,
                durable=method.durable,
                exclusive=method.exclusive,
                auto_delete=method.auto_delete,
                arguments=method.arguments,
            )
        self.last_queue_name = queue.name
        if not method.nowait:
            self.send_method(
                spec.QueueDeclareOk(
                    queue=queue.name, message_count=queue.message_count, consumer_count=queue.consumer_count
                )
            )

    def on_queue_bind(self, method: spec.QueueBind) -> None:
        queue_name = self._queue_name(method.queue)
        routing_key = method.routing_key or (queue_name if not method.queue else "")
        self.authorize("write", "queue", queue_name)
        self.authorize("read", "exchange", method.exchange)
        exchange = self.vhost.exchange(method.exchange)
        self._authorize_topic_read(exchange, routing_key)
        queue = self.vhost.queue(queue_name, self.connection)
        self.vhost.bind(exchange, queue, routing_key, method.arguments)
        if not method.nowait:
            self.send_method(spec.QueueBindOk())

    def on_queue_unbind(self, method: spec.QueueUnbind) -> None:
        queue_name = self._queue_name(method.queue)
        routing_key = method.routing_key or (queue_name if not method.queue else "")
        self.authorize("write", "queue", queue_name)
        self.authorize("read", "exchange", method.exchange)
        exchange = self.vhost.exchanges.get(method.exchange)
        self._authorize_topic_read(exchange, routing_key)
        queue = self.vhost.queues.get(queue_name)
        if exchange is not None and queue is not None:
            self.vhost.check_exclusive(queue, self.connection)
            self.vhost.unbind(exchange, queue, routing_key, method.arguments)
        self.send_method(spec.QueueUnbindOk())

    def on_queue_purge(self, method: spec.QueuePurge) -> None:
        name = self._queue_name(method.queue)
        self.authorize("read", "queue", name)
        queue = self.vhost.queue(name, self.connection)
        queue.check_purge()
        count = queue.purge()
        if not method.nowait:
            self.send_method(spec.QueuePurgeOk(message_count=count))

    def on_queue_delete(self, method: spec.QueueDelete) -> None:
        name = self._queue_name(method.queue)
        self.authorize("configure", "queue", name)
        queue = self.vhost.queues.get(name)
        mark = len(self.connection.output)
        if queue is None:
            # RabbitMQ answers delete-ok with a zero count for a queue that does not exist.
            count = 0
        else:
            self.vhost.check_exclusive(queue, self.connection)
            count = self.vhost.delete_queue(queue, if_unused=method.if_unused, if_empty=method.if_empty)
        if not method.nowait:
            # RabbitMQ answers delete-ok before the basic.cancel that the queue's consumers on this
            # connection get: py-amqp's queue_delete raises ConsumerCancelled if the cancel comes first.
            self.connection.send_method_at(mark, self.id, spec.QueueDeleteOk(message_count=count))

    # --- basic class: consumers --------------------------------------------------------------

    def on_basic_qos(self, method: spec.BasicQos) -> None:
        if method.prefetch_size:
            raise ConnectionError(NOT_IMPLEMENTED, f"prefetch_size!=0 ({method.prefetch_size})", 60, 10)
        if method.global_:
            self.prefetch_global = method.prefetch_count
            self.refill()
        else:
            self.prefetch_count = method.prefetch_count
        self.send_method(spec.BasicQosOk())

    def on_basic_consume(self, method: spec.BasicConsume) -> None:
        tag = method.consumer_tag or names.consumer_tag()
        if tag in self.consumers or (self.reply_to is not None and self.reply_to.tag == tag):
            raise ConnectionError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", 60, 20)
        if 0 < self._max_consumers <= len(self.consumers):
            # RabbitMQ's consumer_max_per_channel, checked as it does, before the queue is looked at.
            raise ConnectionError(
                NOT_ALLOWED, f"reached maximum ({self._max_consumers}) of consumers per channel", 60, 20
            )
        queue_name = self._queue_name(method.queue) if method.queue != direct_reply_to.QUEUE else method.queue
        if queue_name == direct_reply_to.QUEUE:
            self.reply_to = direct_reply_to.start(self, tag, method.no_ack)
            if not method.nowait:
                self.send_method(spec.BasicConsumeOk(consumer_tag=tag))
            return
        self.authorize("read", "queue", queue_name)
        queue = self.vhost.queue(queue_name, self.connection)
        queue_type = self.vhost.queue_type_of(queue)
        where = f"for queue '{queue.name}' in vhost '{self.vhost.name}'"
        problem = consume_problem(method.arguments or {}, where, queue_type.module, queue_type.consumer_arguments)
        if problem is not None:
            raise ChannelError(PRECONDITION_FAILED, problem)
        queue.check_consume(
            no_ack=method.no_ack,
            prefetch=self.prefetch_count,
            prefetch_global=self.prefetch_global,
            arguments=method.arguments or {},
        )
        if queue.exclusive_consumer is not None or (method.exclusive and queue.consumers):
            raise ChannelError(ACCESS_REFUSED, f"queue '{queue.name}' in vhost '{self.vhost.name}' in exclusive use")
        consumer = Consumer(
            self,
            queue,
            tag,
            no_ack=method.no_ack,
            exclusive=method.exclusive,
            prefetch=self.prefetch_count,
            arguments=dict(method.arguments or {}),
        )
        self.consumers[tag] = consumer
        if not method.nowait:
            self.send_method(spec.BasicConsumeOk(consumer_tag=tag))
        queue.add_consumer(consumer)

    def on_basic_cancel(self, method: spec.BasicCancel) -> None:
        tag = method.consumer_tag
        if self.reply_to is not None and self.reply_to.tag == tag:
            self.reply_to.stop()
            self.reply_to = None
        consumer = self.consumers.pop(tag, None)
        if not method.nowait:
            self.send_method(spec.BasicCancelOk(consumer_tag=tag))
        if consumer is not None:
            consumer.queue.remove_consumer(consumer)

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """The consumed queue is gone: drop the consumer and tell a client that understands."""
        consumer.cancel()
        if self.consumers.pop(consumer.tag, None) is None or self.closing or self.closed:
            return
        if self.connection.client_capability("consumer_cancel_notify"):
            self.send_method(spec.BasicCancel(consumer_tag=consumer.tag, nowait=True))

    def on_basic_get(self, method: spec.BasicGet) -> None:
        name = self._queue_name(method.queue)
        self.authorize("read", "queue", name)
        queue = self.vhost.queue(name, self.connection)
        queue.check_get()
        self._get_or_wait(queue, method)

    def _get_or_wait(self, queue: Queue, method: spec.BasicGet) -> None:
        """Answer the get, or, while the queue's head is on disk, once a page read brings it in;
        input waits meanwhile, so that later answers keep their order."""
        if queue.wait_for_page(lambda: self.connection.run_guarded(lambda: self._get_after_page(queue, method))):
            self.connection.hold_input()
            return
        self._answer_get(queue, method)

    def _get_after_page(self, queue: Queue, method: spec.BasicGet) -> None:
        self.connection.resume_input()
        if self.closed or self.closing:
            return
        try:
            self._get_or_wait(queue, method)
        except ChannelError as error:
            self.connection.close_channel_with_error(self, error)

    def _answer_get(self, queue: Queue, method: spec.BasicGet) -> None:
        while True:
            entry = queue.get(method.no_ack)
            if entry is None:
                self.stats.get_empty += 1
                queue.stats.get_empty += 1
                self.send_method(spec.BasicGetEmpty())
                return
            tag = self._next_delivery_tag
            try:
                frames = self._get_ok_frames(tag, entry, queue)
            except Exception:
                self._undeliverable(entry, queue, method.no_ack)
                continue
            break
        self._next_delivery_tag = tag + 1
        if method.no_ack:
            self.stats.get_no_ack += 1
            queue.stats.get_no_ack += 1
        else:
            self.unacked[tag] = Delivery(entry, queue, None, self._now())
            if self._timeout_timer is None:
                self._watch_timeouts()
            self.stats.get += 1
            queue.stats.get += 1
        if entry.redelivered:
            self.stats.redeliver += 1
            queue.stats.redeliver += 1
        self.connection.send(frames)

    def _get_ok_frames(self, tag: int, entry: QueuedMessage, queue: Queue) -> bytes:
        message = entry.message
        method = spec.BasicGetOk(
            delivery_tag=tag,
            redelivered=entry.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_count=queue.message_count,
        )
        return content_frames(self.id, method, 60, message.raw_properties, message.body, self.connection.frame_max)

    # --- basic class: acknowledgements -------------------------------------------------------

    def _take_deliveries(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Delivery]]:
        """Remove and return the deliveries a tag names, or fail as RabbitMQ does."""
        unacked = self.unacked
        if multiple:
            taken = []
            for tag in list(unacked) if delivery_tag == 0 else unacked:
                if delivery_tag and tag > delivery_tag:
                    break
                taken.append((tag, unacked[tag]))
            for tag, _delivery in taken:
                del unacked[tag]
            if not taken and delivery_tag > self._next_delivery_tag - 1:
                raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {delivery_tag}")
            return taken
        delivery = unacked.pop(delivery_tag, None)
        if delivery is None:
            raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {delivery_tag}")
        return [(delivery_tag, delivery)]

    def on_basic_ack(self, method: spec.BasicAck) -> None:
        taken = self._take_deliveries(method.delivery_tag, method.multiple)
        if self.tx is not None:
            self.tx.settlements.append((taken, False, True))
            return
        self._settle(taken, requeue=False, acked=True)

    def on_basic_reject(self, method: spec.BasicReject) -> None:
        self._reject(self._take_deliveries(method.delivery_tag, False), method.requeue)

    def on_basic_nack(self, method: spec.BasicNack) -> None:
        self._reject(self._take_deliveries(method.delivery_tag, method.multiple), method.requeue)

    def _reject(self, taken: list[tuple[int, Delivery]], requeue: bool) -> None:
        if self.tx is not None:
            self.tx.settlements.append((taken, requeue, False))
            return
        self._settle(taken, requeue=requeue)

    def _settle(
        self, taken: list[tuple[int, Delivery]], *, requeue: bool, acked: bool = False, failed: bool = False
    ) -> None:
        """Acked, rejected or requeued: free the consumers' windows, and let the queues of the
        consumers whose window opened dispatch (no other consumer can take more than before).
        ``failed``: requeued because the channel went away, not at the client's request."""
        if acked:
            self.stats.ack += len(taken)
        touched: dict[Queue, list[QueuedMessage]] = {}
        opened: dict[Queue, None] = {}
        for _tag, delivery in taken:
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked -= 1
                if not (consumer.in_ring or consumer.parked or consumer.cancelled):
                    self._window_opened(consumer, opened)
            touched.setdefault(delivery.queue, []).append(delivery.entry)
        if self._parked:
            self._unpark_all(opened)
        for queue, entries in touched.items():
            if queue.deleted:
                continue
            if requeue:
                queue.requeue(entries, delivery_failed=failed)
            elif acked:
                queue.settled(entries)
                queue.stats.ack += len(entries)
            else:
                queue.rejected(entries)
        for queue in opened:
            queue.dispatch_opened()

    def _window_opened(self, consumer: Consumer, opened: dict[Queue, None]) -> None:
        """The consumer had left its queue's ring with a full window; an ack opened it."""
        if consumer.window_full():
            return
        if not self.can_deliver():
            self.park(consumer)
        elif consumer.queue.take_back(consumer):
            opened[consumer.queue] = None

    def can_deliver(self) -> bool:
        """Deliveries may go out on this channel: open, its socket taking them, global prefetch not used up."""
        return (
            self.active and not self.closed and (not self.prefetch_global or len(self.unacked) < self.prefetch_global)
        )

    def park(self, consumer: Consumer) -> None:
        consumer.parked = True
        self._parked[consumer] = None

    def unpark(self, consumer: Consumer) -> None:
        consumer.parked = False
        self._parked.pop(consumer, None)

    def _unpark_all(self, opened: dict[Queue, None]) -> None:
        """The channel can deliver again: its parked consumers go back to their queues' rings,
        in the order they were parked."""
        if not self.can_deliver():
            return
        parked, self._parked = self._parked, {}
        for consumer in parked:
            consumer.parked = False
            if consumer.queue.take_back(consumer):
                opened[consumer.queue] = None

    def refill(self) -> None:
        """The channel can deliver again (its socket drained, a larger global prefetch): the
        queues of its parked consumers dispatch."""
        if not self._parked:
            return
        opened: dict[Queue, None] = {}
        self._unpark_all(opened)
        for queue in opened:
            queue.dispatch_opened()

    def on_basic_recover(self, method: spec.BasicRecover) -> None:
        self._recover(method.requeue)
        self.send_method(spec.BasicRecoverOk())

    def on_basic_recover_async(self, method: spec.BasicRecoverAsync) -> None:
        self._recover(method.requeue)

    def _recover(self, requeue: bool) -> None:
        if not requeue:
            raise ConnectionError(NOT_IMPLEMENTED, "requeue=false", 60, 110)
        taken = list(self.unacked.items())
        self.unacked.clear()
        self._settle(taken, requeue=True)

    # --- tx and confirm classes --------------------------------------------------------------

    def on_tx_select(self, method: spec.TxSelect) -> None:
        if self.confirm_mode:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()
        self.send_method(spec.TxSelectOk())

    def on_tx_commit(self, method: spec.TxCommit) -> None:
        tx = self.tx
        if tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        self.tx = None
        durable = False
        try:
            for exchange, message, mandatory in tx.publishes:
                if not exchange.deleted:
                    self.route_and_enqueue(exchange, message, mandatory)
                    durable = durable or message.durably_written
            for taken, requeue, acked in tx.settlements:
                self._settle(taken, requeue=requeue, acked=acked)
        finally:
            self.tx = Transaction()
        store = self.connection.broker.store
        if durable and store is not None and store.failed is not None:
            raise ConnectionError(INTERNAL_ERROR, f"the transaction cannot be made durable: {store.failed}", 90, 20)
        if durable and store is not None:
            # commit-ok means the transaction's messages are on disk, as in RabbitMQ.
            self.connection.broker.submit_barrier(
                lambda: None if self.closed else self.send_method(spec.TxCommitOk())
            )
            return
        self.send_method(spec.TxCommitOk())

    def on_tx_rollback(self, method: spec.TxRollback) -> None:
        tx = self.tx
        if tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        # Settlements are undone: those deliveries are unacked again, in tag order.
        restored = dict(self.unacked)
        for taken, _requeue, _acked in tx.settlements:
            restored.update(taken)
        self.unacked = dict(sorted(restored.items()))
        self.tx = Transaction()
        self.send_method(spec.TxRollbackOk())

    def on_confirm_select(self, method: spec.ConfirmSelect) -> None:
        if self.tx is not None:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        self.confirm_mode = True
        if not method.nowait:
            self.send_method(spec.ConfirmSelectOk())

    # --- consumer timeout ----------------------------------------------------------------------

    def _timeout_of(self, delivery: Delivery) -> int:
        """The consumer's own x-consumer-timeout (quorum queues take one), else the queue's, else
        the broker's, as rabbit_queue_type:consume resolves it."""
        consumer = delivery.consumer
        own = consumer.arguments.get("x-consumer-timeout") if consumer is not None else None
        if isinstance(own, int) and not isinstance(own, bool):
            return own
        queue_timeout = delivery.queue.consumer_timeout
        return queue_timeout if queue_timeout is not None else self.connection.broker.config.consumer_timeout

    def _watch_timeouts(self) -> None:
        """Check, when the oldest delivery falls due, that it has been acknowledged in time."""
        if not self.unacked or self.closed:
            self._timeout_timer = None
            return
        oldest = next(iter(self.unacked.values()))
        due = oldest.delivered_at + self._timeout_of(oldest) / 1000
        self._timeout_timer = self.vhost.scheduler.call_later(max(due - self._now(), 0.0), self._timeouts_due)

    def _timeouts_due(self) -> None:
        self._timeout_timer = None
        if self.closed or self.closing or not self.unacked:
            return
        oldest = next(iter(self.unacked.values()))
        timeout = self._timeout_of(oldest)
        if self._now() - oldest.delivered_at >= timeout / 1000:
            error = ChannelError(
                PRECONDITION_FAILED,
                f"delivery acknowledgement on channel {self.id} timed out. Timeout value used: {timeout} ms. "
                "This timeout value can be configured, see consumers doc guide to learn more",
            )
            self.connection.close_channel_with_error(self, error)
            return
        self._watch_timeouts()

    # --- closing -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """The channel is gone: requeue what it held, and drop its consumers."""
        if self.closed:
            return
        self.closed = True
        self._publish = None
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None
        taken = list(self.unacked.items())
        self.unacked.clear()
        if self.reply_to is not None:
            self.reply_to.stop()
            self.reply_to = None
        consumers = list(self.consumers.values())
        self.consumers.clear()
        # Requeue while still registered but closed (no room): nothing comes back to this channel.
        self._settle(taken, requeue=True, failed=True)
        for consumer in consumers:
            consumer.queue.remove_consumer(consumer)
        # The vhost keeps what closed channels counted, so its totals never go backwards.
        self.vhost.stats.add(self.stats)
        self.connection.broker.churn.channel_closed += 1


class Transaction:
    """What a tx channel has done since its last commit or rollback."""

    __slots__ = ("publishes", "settlements")

    def __init__(self) -> None:
        self.publishes: list[tuple[Exchange, Message, bool]] = []
        # (deliveries, requeue, acked): an ack, or a reject/nack with or without requeue.
        self.settlements: list[tuple[list[tuple[int, Delivery]], bool, bool]] = []
