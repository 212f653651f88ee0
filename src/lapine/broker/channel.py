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
from lapine.amqp.constants import (
    ACCESS_REFUSED,
    COMMAND_INVALID,
    NO_ROUTE,
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    PRECONDITION_FAILED,
)
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.amqp.frames import content_frames, encode_deliver_frames
from lapine.amqp.properties import malformed_properties, properties_are_valid
from lapine.broker import direct_reply_to, names, publish_checks
from lapine.broker.acknowledgements import Acknowledgements, Delivery
from lapine.broker.consumer import Consumer
from lapine.broker.content_assembly import ContentAssembly
from lapine.broker.exchange import Exchange
from lapine.broker.message import Message
from lapine.broker.publish_checks import INSPECT_FLAGS_HIGH, REPLY_TO_FLAG_HIGH, USER_ID_FLAG
from lapine.broker.publisher_confirms import PublisherConfirms
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.queue_types.declare_arguments import consume_problem
from lapine.broker.stats import MessageStats
from lapine.broker.transaction import Transactions

if TYPE_CHECKING:
    from lapine.auth.permissions import TopicPermission
    from lapine.broker.connection import Connection

log = logging.getLogger("lapine.channel")


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



class Channel(ContentAssembly, PublisherConfirms, Acknowledgements, Transactions):
    """One channel; its parts are in content_assembly.py (the publish in progress),
    publisher_confirms.py, acknowledgements.py (unacked deliveries, the consumer timeout) and
    transaction.py."""

    def __init__(self, connection: Connection, channel_id: int) -> None:
        self.connection = connection
        self.vhost = connection.vhost
        self.id = channel_id
        self.closing = False  # channel.close sent, waiting for close-ok
        self.closed = False
        self.active = True
        self.consumers: dict[str, Consumer] = {}
        self._max_consumers = connection.broker.config.consumer_max_per_channel
        self.prefetch_count = 0  # applies to consumers created after it (global=false)
        self.last_queue_name = ""
        self._init_acknowledgements()
        self._init_confirms()
        self._init_transactions()
        self._init_assembly(connection.broker.config.max_message_size)
        self.stats = MessageStats()
        self._now = self.vhost.scheduler.time
        self._message_sizes = connection.broker.message_sizes
        self.reply_to: direct_reply_to.ReplyConsumer | None = None
        # Exchanges this channel may publish to, valid while the permissions' version holds.
        self._permissions = connection.broker.permissions
        self._publish_exchanges: dict[str, Exchange] = {}
        # Of those, the topic exchanges whose topic permission limits this user's routing keys.
        self._topic_write: dict[str, TopicPermission] = {}
        self._publish_version = -1
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
            content_frames(self.id, method, message.raw_properties, message.body, self.connection.frame_max)
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
                raise ChannelError(PRECONDITION_FAILED, "fast reply consumer does not exist", *spec.BasicPublish.IDS)
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
                        reply_code=NO_ROUTE,
                        reply_text="NO_ROUTE",
                        exchange=message.exchange,
                        routing_key=message.routing_key,
                    ),
                    message,
                )
            else:
                self.stats.drop_unroutable += 1
        return accepted

    # --- channel class -----------------------------------------------------------------------

    def on_flow(self, method: spec.ChannelFlow) -> None:
        if not method.active:
            raise ConnectionError(NOT_IMPLEMENTED, "active=false", *spec.ChannelFlow.IDS)
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
            raise ConnectionError(NOT_IMPLEMENTED, f"prefetch_size!=0 ({method.prefetch_size})", *spec.BasicQos.IDS)
        if method.global_:
            self.prefetch_global = method.prefetch_count
            self.refill()
        else:
            self.prefetch_count = method.prefetch_count
        self.send_method(spec.BasicQosOk())

    def on_basic_consume(self, method: spec.BasicConsume) -> None:
        tag = method.consumer_tag or names.consumer_tag()
        if tag in self.consumers or (self.reply_to is not None and self.reply_to.tag == tag):
            raise ConnectionError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", *spec.BasicConsume.IDS)
        if 0 < self._max_consumers <= len(self.consumers):
            # RabbitMQ's consumer_max_per_channel, checked as it does, before the queue is looked at.
            raise ConnectionError(
                NOT_ALLOWED, f"reached maximum ({self._max_consumers}) of consumers per channel", *spec.BasicConsume.IDS
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
        return content_frames(self.id, method, message.raw_properties, message.body, self.connection.frame_max)

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
