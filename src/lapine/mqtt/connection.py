"""One MQTT client: its connection and its session, sans-IO (bytes in, bytes out), over the broker.

As in RabbitMQ's MQTT plugin (rabbit_mqtt_processor.erl), an MQTT session is made of AMQP things:
publishes go to the vhost's ``mqtt_exchange`` (amq.topic) with the topic as routing key, and
subscriptions are bindings from that exchange to the queues ``mqtt-subscription-<client id>qos0``
and ``...qos1``, which this connection consumes. A session that outlives its connection (clean
session 0, or an MQTT 5 session expiry) has durable queues that expire with it (x-expires); one
that does not has exclusive queues, gone with the connection.

The object also stands in for an AMQP connection where the broker and the management API look at
connections (name, user, vhost, byte counts, close_with_error), and for a channel where a queue
hands a consumer a message (``deliver``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lapine.amqp.errors import AMQPError, ChannelError
from lapine.broker import flow
from lapine.broker.connection import State
from lapine.broker.consumer import Consumer
from lapine.broker.output_buffer import OutputBuffer
from lapine.broker.read_gate import Pause, ReadGate
from lapine.mqtt import convert, topics
from lapine.mqtt import packets as p
from lapine.mqtt.codec import PacketReader, encode
from lapine.mqtt.errors import MalformedPacket, PacketTooLarge, ProtocolError, UnsupportedProtocolVersion
from lapine.mqtt.node import WILL_QUEUE_PREFIX
from lapine.mqtt.retained import RetainedMessage

if TYPE_CHECKING:
    from lapine.broker.exchange import Exchange
    from lapine.broker.message import Message
    from lapine.broker.queue import Queue, QueuedMessage
    from lapine.broker.vhost import VirtualHost
    from lapine.mqtt.node import MqttNode

log = logging.getLogger("lapine.mqtt")

QUEUE_PREFIX = "mqtt-subscription-"
WILL_QUEUE_MARGIN_MS = 5000
SUBSCRIPTION_OPTIONS = "x-mqtt-subscription-opts"
UINT_MAX = 0xFFFFFFFF
CONSUMER_TAG = "mqtt"
# CONNACK return codes of MQTT 3.x for the MQTT 5 reason codes CONNECT can fail with.
_V3_CONNACK = {
    p.UNSUPPORTED_PROTOCOL_VERSION: p.CONNACK_UNACCEPTABLE_PROTOCOL_VERSION,
    p.CLIENT_IDENTIFIER_NOT_VALID: p.CONNACK_IDENTIFIER_REJECTED,
    p.BAD_USER_NAME_OR_PASSWORD: p.CONNACK_BAD_USERNAME_OR_PASSWORD,
    p.NOT_AUTHORIZED: p.CONNACK_NOT_AUTHORIZED,
    p.QUOTA_EXCEEDED: p.CONNACK_NOT_AUTHORIZED,
}


class Refused(Exception):
    """CONNECT refused with an MQTT 5 reason code (mapped to a 3.x return code for older clients)."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        super().__init__(text)


class Delivery:
    """A QoS 1 PUBLISH sent and not yet acknowledged: what PUBACK settles."""

    __slots__ = ("entry", "queue")

    def __init__(self, entry: QueuedMessage | None, queue: Queue | None) -> None:
        self.entry = entry
        self.queue = queue


class MqttConnection:
    protocol = "MQTT"

    def __init__(
        self,
        node: MqttNode,
        peer: tuple[str, int],
        wakeup: Callable[[], None],
        local: tuple[str, int] = ("127.0.0.1", 1883),
        *,
        transport: str = "tcp",
    ) -> None:
        self.node = node
        self.broker = node.broker
        config = node.config
        self.config = config
        self.wakeup = wakeup
        self.peer_host, self.peer_port = peer
        self.local_host, self.local_port = local
        self.name = f"{_address(self.peer_host, self.peer_port)} -> {_address(self.local_host, self.local_port)}"
        self.transport = transport  # tcp, tls or websocket
        self.reader = PacketReader(
            config.mqtt_max_packet_size_unauthenticated, config.mqtt_max_packet_size_authenticated
        )
        # What we send; past one tick's share, deliveries wait (``active``).
        self.out = OutputBuffer(wakeup, self._writable_changed)
        self._send_data = self.out.send  # bound once: every delivery goes through it
        self.finished = False
        self.output_delay = 0.0
        self.state = State.AWAIT_HEADER
        self.level = p.MQTT_3_1_1
        self.client_id = ""
        self.keepalive = 0
        # What the broker and the management API read from a connection.
        self.username = ""
        self.vhost: VirtualHost = None  # type: ignore[assignment]  # set by CONNECT
        self.channels: dict[int, Any] = {}
        self.client_properties: dict[str, Any] = {}
        self.exclusive_queues: set[Queue] = set()
        self.auth_mechanism = "none"
        self.connected_at = time.time()
        self.bytes_received = 0
        self.bytes_sent = 0
        self.frame_max = 0
        self.channel_max = 0
        self.published = False
        self.blocked = False
        # What a queue reads from a consumer's channel.
        self.active = True
        self.closed = False
        self.prefetch_global = 0
        self.id = 0
        # The session.
        self.exchange: Exchange | None = None
        self.session_expiry = 0
        self.subscriptions: dict[str, p.Subscription] = {}
        self.subscription_ids: dict[str, int] = {}
        self.consumers: dict[int, Consumer] = {}
        self.unacked: dict[int, Delivery] = {}
        self._next_packet_id = 1
        self.prefetch = config.mqtt_prefetch
        self.will: p.Will | None = None
        self.aliases_in: dict[int, str] = {}
        # Topic aliases we set on deliveries, up to the lower of both sides' Topic Alias Maximum.
        self.aliases_out: dict[str, int] = {}
        self.alias_max_out = 0
        self.max_packet_out = 0  # the client's Maximum Packet Size; 0: none
        self._pubacks: list[tuple[int, int]] = []
        # Credit flow: past its credit a publisher's packets wait (``held``) for the next tick.
        self.credit = flow.Credit()
        self.held: list[p.Packet] | None = None
        # Shut while the next packet must wait: out of credit (FLOW). Its subscriptions' queues
        # and bindings are written without holding its input.
        self.input_gate = ReadGate()
        self._pubacks_waiting = 0  # batches of PUBACKs waiting for the store
        self._resumed: list[tuple[Queue, int]] = []
        self._write_checked = -1  # the permissions' version the write check passed for
        self._no_local_count = 0  # subscriptions with No Local: publishes must look at them
        # This protocol's share of broker.protocol_counters, once CONNECT says which protocol.
        self.counters: Counter[str] = Counter()
        self._durable_publish = False

    def __repr__(self) -> str:
        return f"<MqttConnection {self.name} {self.client_id!r}>"

    @property
    def connection(self) -> MqttConnection:
        """A consumer's channel's connection: this one (an MQTT connection has no channels)."""
        return self

    @property
    def counter_protocol(self) -> str:
        return p.COUNTER_PROTOCOLS.get(self.level, "mqtt")

    @property
    def protocol_label(self) -> str:
        return p.PROTOCOL_LABELS.get(self.level, "MQTT")

    @property
    def heartbeat(self) -> int:
        return self.keepalive

    @property
    def v5(self) -> bool:
        return self.level == p.MQTT_5

    # --- output ------------------------------------------------------------------------------

    def send(self, packet: p.Packet) -> None:
        self._send_data(encode(packet, self.level))

    @property
    def output(self) -> list[bytes]:
        """The pieces gathered for the next write."""
        return self.out.pieces

    @property
    def output_size(self) -> int:
        return self.out.size

    def take_output(self) -> bytes:
        return self.out.take()

    def output_written(self) -> None:
        """The transport wrote what we had: deliveries held back by a full tick may go on."""
        self.out.written()

    def set_writable(self, writable: bool) -> None:
        """The socket's buffer filled up or drained: deliveries wait in the queues meanwhile."""
        self.out.set_socket_writable(writable)

    def _writable_changed(self, writable: bool) -> None:
        """Queues hand us messages only while neither the socket nor this tick's output is full:
        a backlog waits in its queue (and on disk), not in our output."""
        self.active = writable
        if writable:
            self._refill()

    def _finish(self) -> None:
        self.finished = True
        self.wakeup()

    def client_capability(self, name: str) -> bool:
        return False  # no connection.blocked in MQTT: a blocked publisher is just not read from

    # --- input -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        self.bytes_received += len(data)
        self._guarded(lambda: self._received(self.reader.feed(data)))

    def _received(self, packets: list[p.Packet]) -> None:
        if self.held is not None or self.input_gate.reasons:
            self._hold(packets)  # still out of credit: these wait, in order, behind the held ones
        else:
            self._run(packets)

    def _run(self, packets: list[p.Packet]) -> None:
        waits = self.input_gate.reasons
        for index, packet in enumerate(packets):
            self._handle(packet)
            if self.finished:
                return
            if waits and index + 1 < len(packets):
                self._hold(packets[index + 1 :])
                return

    # --- credit flow (broker/flow.py), as an AMQP connection has it ----------------------------

    def charge(self, queue: Queue) -> None:
        """A message of ours went into ``queue``, which is behind."""
        if self.credit.charge(queue):
            self.input_gate.pause(Pause.FLOW)

    @property
    def in_flow(self) -> bool:
        """Held by credit flow within the last few seconds: RabbitMQ's state "flow"."""
        return self.broker.scheduler.time() - self.credit.held_at < flow.FLOW_STATE_SECONDS

    def grant_credit(self, trickle: bool = False) -> None:
        self.credit.grant(trickle)

    def _hold(self, packets: list[p.Packet]) -> None:
        self.held = [*(self.held or ()), *packets]
        if self.credit.exhausted:
            self.credit.held_at = self.broker.scheduler.time()
            self.broker.flow_holds += 1

    def release_held(self) -> None:
        """Packets held for credit go on, while there is credit."""
        self.input_gate.pause_while(Pause.FLOW, self.credit.exhausted)
        held = self.held
        if held is None or self.input_gate.reasons or self.finished:
            return
        self.held = None
        self._guarded(lambda: self._run(held))

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run packet handling; bad input closes the connection with its reason."""
        try:
            work()
        except UnsupportedProtocolVersion as error:
            log.error("MQTT connection %s: %s", self.name, error)
            self.out.send(encode(p.ConnAck(False, p.CONNACK_UNACCEPTABLE_PROTOCOL_VERSION), p.MQTT_3_1_1))
            self._finish()
        except PacketTooLarge as error:
            log.error("MQTT connection %s: %s", self.name, error)
            self.close(p.PACKET_TOO_LARGE)
        except ProtocolError as error:
            log.error("MQTT protocol error on connection %s: %s", self.name, error)
            self.close(p.PROTOCOL_ERROR)
        except MalformedPacket as error:
            log.error("MQTT detected a malformed packet on connection %s: %s", self.name, error)
            self.close(p.MALFORMED_PACKET)
        except Exception:
            # A bug of ours must cost this connection only, as on the AMQP side.
            log.exception("internal error on MQTT connection %s", self.name)
            self.close(p.IMPLEMENTATION_SPECIFIC_ERROR)
        self._flush_pubacks()

    def _handle(self, packet: p.Packet) -> None:
        if isinstance(packet, p.Connect):
            self._on_connect(packet)
        elif isinstance(packet, p.Publish):
            self._on_publish(packet)
        elif isinstance(packet, p.PubAck) and packet.kind == p.PUBACK:
            self._on_puback(packet)
        elif isinstance(packet, p.Subscribe):
            self._on_subscribe(packet)
        elif isinstance(packet, p.Unsubscribe):
            self._on_unsubscribe(packet)
        elif isinstance(packet, p.PingReq):
            self.send(p.PingResp())
        elif isinstance(packet, p.Disconnect):
            self._on_disconnect(packet)
        else:
            # PUBREC/PUBREL/PUBCOMP (QoS 2 is not granted), AUTH, and packets only a server sends.
            raise ProtocolError(f"unexpected {type(packet).__name__} packet")

    # --- CONNECT -----------------------------------------------------------------------------

    def _on_connect(self, packet: p.Connect) -> None:
        self.level = packet.protocol_level
        try:
            try:
                session_present = self._open_session(packet)
            except ChannelError as error:
                raise Refused(p.NOT_AUTHORIZED, error.reply_text) from None
        except Refused as refused:
            log.error("Rejected MQTT connection %s with Connect Reason Code %#x: %s", self.name, refused.code, refused)
            code = refused.code if self.v5 else _V3_CONNACK.get(refused.code, p.CONNACK_SERVER_UNAVAILABLE)
            if refused.code in (p.BAD_USER_NAME_OR_PASSWORD, p.NOT_AUTHORIZED):
                self.output_delay = self.config.login_failure_delay
            self.send(p.ConnAck(False, code))
            self._finish()
            return
        properties: dict[str, Any] = {}
        if self.v5:
            properties = {
                "maximum_qos": 1,
                "topic_alias_maximum": self.config.mqtt_topic_alias_maximum,
                "maximum_packet_size": self.config.mqtt_max_packet_size_authenticated,
                "shared_subscription_available": 0,
                "session_expiry_interval": self.session_expiry,
            }
            if not packet.client_id:
                properties["assigned_client_identifier"] = self.client_id
        self.send(p.ConnAck(session_present, p.SUCCESS, properties))
        log.info("Accepted MQTT connection %s for client ID %s", self.name, self.client_id)
        # Messages kept for a resumed session follow the CONNACK.
        resumed, self._resumed = self._resumed, []
        for queue, qos in resumed:
            self._consume(queue, qos)

    def _open_session(self, packet: p.Connect) -> bool:
        self.client_id = self._client_id(packet)
        self.keepalive = packet.keepalive
        self.session_expiry = self._session_expiry(packet)
        self.vhost, self.username = self._login(packet)
        self.exchange = self.vhost.exchanges.get(self.config.mqtt_exchange)
        if self.exchange is None:
            raise Refused(
                p.SERVER_UNAVAILABLE, f"no exchange '{self.config.mqtt_exchange}' in vhost '{self.vhost.name}'"
            )
        props = packet.properties
        self.prefetch = min(self.config.mqtt_prefetch, props.get("receive_maximum", 65535)) or 1
        self.max_packet_out = props.get("maximum_packet_size", 0)
        self.alias_max_out = min(props.get("topic_alias_maximum", 0), self.config.mqtt_topic_alias_maximum)
        self.client_properties = {"client_id": self.client_id, "protocol": self.protocol_label}
        self.counters = self.broker.protocol_counters.setdefault(self.counter_protocol, Counter())
        previous = self.node.register(self)
        if previous is not None:
            previous.taken_over()
        self._cancel_pending_will()
        self.will = packet.will
        self.state = State.OPEN
        self.broker.connections.add(self)
        self.broker.churn.connection_created += 1
        return self._resume_or_clean(packet.clean_start)

    def _client_id(self, packet: p.Connect) -> str:
        if packet.client_id:
            return packet.client_id
        if not packet.clean_start and not self.v5:
            # 3.1.1: "If the Client supplies a zero-byte ClientId, the Client MUST also set
            # CleanSession to 1" [MQTT-3.1.3-7]; otherwise return code 0x02.
            raise Refused(p.CLIENT_IDENTIFIER_NOT_VALID, "empty client ID with clean session 0")
        return secrets.token_urlsafe(16)

    def _session_expiry(self, packet: p.Connect) -> int:
        """RabbitMQ's rule: MQTT 5 asks (0xFFFFFFFF: the maximum); 3.x clean session means 0, a
        persistent 3.x session gets the maximum."""
        maximum = self.config.mqtt_max_session_expiry_interval
        if self.v5:
            requested = packet.properties.get("session_expiry_interval", 0)
            return maximum if requested == UINT_MAX else min(requested, maximum)
        return 0 if packet.clean_start else maximum

    def _login(self, packet: p.Connect) -> tuple[VirtualHost, str]:
        config = self.config
        if packet.properties.get("authentication_method") is not None:
            raise Refused(p.BAD_AUTHENTICATION_METHOD, "extended authentication is not supported")
        if packet.username is None and packet.password is None:
            if not config.mqtt_allow_anonymous:
                raise Refused(p.BAD_USER_NAME_OR_PASSWORD, "anonymous login is not allowed")
            name, password = config.mqtt_default_user, config.mqtt_default_pass
        elif packet.username is None or packet.password is None:
            raise Refused(p.BAD_USER_NAME_OR_PASSWORD, "a user name needs a password and a password a user name")
        else:
            name, password = packet.username, packet.password.decode("utf-8", "replace")
        vhost_name = config.mqtt_vhost
        if ":" in name:
            vhost_name, name = name.split(":", 1)
        broker = self.broker
        user = broker.users.authenticate(name, password, self.peer_host)
        if user is None:
            raise Refused(p.BAD_USER_NAME_OR_PASSWORD, f"user '{name}' - invalid credentials")
        vhost = broker.vhosts.get(vhost_name)
        if vhost is None:
            raise Refused(p.BAD_USER_NAME_OR_PASSWORD, f"vhost '{vhost_name}' does not exist")
        node_limit = config.connection_max
        if 0 < node_limit <= len(broker.connections):
            raise Refused(p.QUOTA_EXCEEDED, f"node connection limit ({node_limit}) is reached")
        limit = vhost.limits.get("max-connections", -1)
        if limit >= 0 and sum(1 for c in broker.connections if c.vhost is vhost) >= limit:
            raise Refused(p.QUOTA_EXCEEDED, f"connection limit ({limit}) of vhost '{vhost.name}' is reached")
        if not broker.permissions.can_access(name, vhost.name):
            raise Refused(p.NOT_AUTHORIZED, f"access to vhost '{vhost.name}' refused for user '{name}'")
        self.auth_mechanism = "PLAIN" if packet.username is not None else "ANONYMOUS"
        return vhost, name

    def _resume_or_clean(self, clean_start: bool) -> bool:
        """Clean start drops the session's queues; otherwise existing ones are consumed again and
        their bindings are the subscriptions (Session Present)."""
        present = False
        for qos in (0, 1):
            queue = self.vhost.queues.get(self.queue_name(qos))
            if queue is None:
                continue
            owner = self.vhost.owner_of(queue)
            if owner is not None and owner is not self:
                raise Refused(p.SERVER_UNAVAILABLE, f"queue '{queue.name}' is held by another connection")
            if clean_start:
                self._authorize("configure", "queue", queue.name)
                self.vhost.delete_queue(queue)
                continue
            present = True
            self._authorize("read", "queue", queue.name)
            self._recover_subscriptions(queue, qos)
            self._resumed.append((queue, qos))
            self._set_queue_expiry(queue)
        self._subscriptions_changed()
        return present

    def _recover_subscriptions(self, queue: Queue, qos: int) -> None:
        assert self.exchange is not None
        for destination, key, arguments in self.exchange.router.bindings():
            if destination is not queue:
                continue
            topic_filter = topics.to_mqtt(key)
            options = arguments.get(SUBSCRIPTION_OPTIONS) or {}
            self.subscriptions[topic_filter] = p.Subscription(
                topic_filter,
                qos,
                bool(options.get("no-local", False)),
                bool(options.get("retain-as-published", False)),
                int(options.get("retain-handling", 0)),
            )
            if isinstance(options.get("id"), int):
                self.subscription_ids[topic_filter] = options["id"]

    def queue_name(self, qos: int) -> str:
        return f"{QUEUE_PREFIX}{self.client_id}qos{qos}"

    def _authorize(self, kind: str, resource: str, name: str) -> None:
        self.broker.permissions.check(self.username, self.vhost.name, kind, resource, name)

    # --- PUBLISH from the client -------------------------------------------------------------

    def _on_publish(self, packet: p.Publish) -> None:
        if packet.qos == 2:
            if self.v5:
                # We said Maximum QoS 1 in CONNACK: "DISCONNECT with Reason Code 0x9B".
                log.warning("Received a PUBLISH with QoS2. Disconnecting MQTT client %s", self.client_id)
                self.close(p.QOS_NOT_SUPPORTED)
                return
            packet.qos = 1  # RabbitMQ downgrades QoS 2 to 1 for MQTT 3.x
        topic = self._inbound_topic(packet)
        if topic is None:
            return
        packet.topic = topic
        if self.v5:
            packet.properties.pop("topic_alias", None)
            packet.properties.pop("subscription_identifier", None)
        self.publish(packet)

    def _inbound_topic(self, packet: p.Publish) -> str | None:
        alias = packet.properties.get("topic_alias") if self.v5 else None
        topic = packet.topic
        if alias is not None:
            if alias == 0 or alias > self.config.mqtt_topic_alias_maximum:
                self.close(p.TOPIC_ALIAS_INVALID)
                return None
            if topic:
                self.aliases_in[alias] = topic
            else:
                known = self.aliases_in.get(alias)
                if known is None:
                    self.close(p.PROTOCOL_ERROR)
                    return None
                topic = known
        if not topics.valid_topic_name(topic):
            log.error("MQTT connection %s: invalid topic name '%s'", self.name, topic)
            self.close(p.TOPIC_NAME_INVALID)
            return None
        return topic

    def publish(self, packet: p.Publish) -> bool:
        """Route a client's PUBLISH through the exchange; False when it was refused."""
        assert self.exchange is not None
        permissions = self.broker.permissions
        if self._write_checked != permissions.version:
            # Checked again only when permissions change, as the AMQP channel does.
            try:
                self._authorize("write", "exchange", self.exchange.name)
            except ChannelError as error:
                log.error("MQTT connection %s is closing due to an authorization failure: %s", self.name, error)
                self.close(p.NOT_AUTHORIZED)
                return False
            self._write_checked = permissions.version
        if self.exchange.deleted:
            self.close(p.IMPLEMENTATION_SPECIFIC_ERROR)
            return False
        message = convert.to_message(self.exchange.name, packet, self.v5)
        skip = self._own_queues_to_skip(packet.topic) if self._no_local_count else None
        if skip:
            routed, accepted = self._publish_skipping(message, skip)
        else:
            routed, accepted = self.vhost.publish(self.exchange, message, self)
        self.published = True
        counters = self.counters
        counters["received"] += 1
        counters["routed" if routed else "unroutable_dropped"] += 1
        if packet.qos:
            counters["received_confirm"] += 1
        if packet.retain:
            self._retain(packet)
        if packet.qos and packet.packet_id is not None:
            if message.durably_written:
                self._durable_publish = True
            code = p.SUCCESS
            if not accepted:
                code = p.QUOTA_EXCEEDED
            elif not routed:
                code = p.NO_MATCHING_SUBSCRIBERS
            self._pubacks.append((packet.packet_id, code))
        return True

    def _own_queues_to_skip(self, topic: str) -> set[Queue]:
        """MQTT 5 No Local: our own queues whose every subscription matching the topic says no_local
        (RabbitMQ drops them from the routing result likewise)."""
        skip = set()
        for qos in (0, 1):
            matching = [
                s for s in self.subscriptions.values() if s.qos == qos and topics.matches(s.topic_filter, topic)
            ]
            queue = self.vhost.queues.get(self.queue_name(qos))
            if matching and queue is not None and all(s.no_local for s in matching):
                skip.add(queue)
        return skip

    def _publish_skipping(self, message: Message, skip: set[Queue]) -> tuple[bool, bool]:
        """VirtualHost.publish's route and enqueue, without the queues in ``skip``."""
        assert self.exchange is not None
        exchange = self.exchange
        queues = [queue for queue in self.vhost.route(exchange, message) if queue not in skip]
        exchange.stats.publish_in += 1
        if not queues:
            return False, True
        exchange.stats.publish_out += len(queues)
        accepted = True
        for queue in queues:
            queue.stats.publish += 1
            accepted = queue.publish(message) and accepted
            if flow.is_behind(queue):
                self.charge(queue)
        return True, accepted

    def _retain(self, packet: p.Publish) -> None:
        expiry = packet.properties.get("message_expiry_interval") if self.v5 else None
        properties = {k: v for k, v in packet.properties.items() if k != "message_expiry_interval"}
        expires_at = time.time() + expiry if expiry else 0.0
        retained = RetainedMessage(packet.topic, packet.payload, packet.qos, properties, expires_at)
        self.node.retained.retain(self.vhost.name, retained)

    def _flush_pubacks(self) -> None:
        """PUBACK what this read published: at once, or when the store says the persistent messages
        are on disk (as a publisher confirm waits). PUBACKs keep the PUBLISHes' order
        [MQTT-4.6.0-2], so while one batch waits for the disk the next ones wait behind it."""
        if not self._pubacks:
            return
        pubacks, self._pubacks = self._pubacks, []
        store = self.broker.store
        if store is not None and (self._durable_publish or self._pubacks_waiting):
            self._durable_publish = False
            if store.failed is None:
                self._pubacks_waiting += 1
                self.broker.submit_barrier(lambda: self._pubacks_durable(pubacks))
            else:
                self._send_pubacks(pubacks, p.IMPLEMENTATION_SPECIFIC_ERROR)
            return
        self._send_pubacks(pubacks, p.SUCCESS)

    def _pubacks_durable(self, pubacks: list[tuple[int, int]]) -> None:
        self._pubacks_waiting -= 1
        self._send_pubacks(pubacks, p.SUCCESS)

    def _send_pubacks(self, pubacks: list[tuple[int, int]], failure: int) -> None:
        if self.closed or self.finished:
            return
        for packet_id, code in pubacks:
            if failure != p.SUCCESS:
                code = failure
            if not self.v5 and code >= 0x80:
                continue  # 3.x has no negative acknowledgement: the client sends again
            if code < 0x80:
                self.counters["confirmed"] += 1
            self.send(p.PubAck(packet_id, code if self.v5 else p.SUCCESS))

    # --- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------

    def _on_subscribe(self, packet: p.Subscribe) -> None:
        codes: list[int] = []
        retained: list[tuple[str, int]] = []
        failed = False
        identifier = (packet.properties.get("subscription_identifier") or [None])[0]
        for subscription in packet.subscriptions:
            if failed:
                codes.append(p.UNSPECIFIED_ERROR if self.v5 else p.SUBACK_FAILURE)
                continue
            code = self._subscribe(subscription, identifier, retained)
            codes.append(code)
            failed = code == p.NOT_AUTHORIZED
        self._subscriptions_changed()
        self.send(p.SubAck(packet.packet_id, codes))
        if failed:
            # RabbitMQ's disconnect_on_unauthorized: the SUBACK says which, then the connection goes.
            self.close(p.NOT_AUTHORIZED)
            return
        for topic_filter, qos in retained:
            self._send_retained(topic_filter, qos)

    def _subscribe(self, subscription: p.Subscription, identifier: int | None, retained: list[tuple[str, int]]) -> int:
        topic_filter = subscription.topic_filter
        if topic_filter.startswith("$share/"):
            return p.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if self.v5 else p.SUBACK_FAILURE
        if not topics.valid_topic_filter(topic_filter):
            return p.TOPIC_FILTER_INVALID if self.v5 else p.SUBACK_FAILURE
        subscription.qos = min(subscription.qos, 1)
        existing = self.subscriptions.get(topic_filter)
        if existing == subscription and self.subscription_ids.get(topic_filter) == identifier:
            if subscription.retain_handling == 0:
                retained.append((topic_filter, subscription.qos))
            return subscription.qos
        try:
            queue = self._ensure_queue(subscription.qos)
            self._bind(queue, subscription, identifier)
            if existing is not None:
                self._unbind(existing, self.subscription_ids.get(topic_filter), only_other_queue=queue)
            self._consume(queue, subscription.qos)
        except ChannelError as error:
            log.error("MQTT connection %s: subscribing to '%s' failed: %s", self.name, topic_filter, error)
            if error.reply_code == 403:
                return p.NOT_AUTHORIZED if self.v5 else p.SUBACK_FAILURE
            return (
                (p.QUOTA_EXCEEDED if "limit" in error.reply_text else p.UNSPECIFIED_ERROR)
                if self.v5
                else (p.SUBACK_FAILURE)
            )
        self.subscriptions[topic_filter] = subscription
        if identifier is not None:
            self.subscription_ids[topic_filter] = identifier
        else:
            self.subscription_ids.pop(topic_filter, None)
        if subscription.retain_handling == 0 or (subscription.retain_handling == 1 and existing is None):
            retained.append((topic_filter, subscription.qos))
        return subscription.qos

    def _ensure_queue(self, qos: int) -> Queue:
        name = self.queue_name(qos)
        queue = self.vhost.queues.get(name)
        if queue is not None:
            return queue
        self._authorize("configure", "queue", name)
        if self.session_expiry == 0:
            # The session ends with the connection: an exclusive queue goes with it.
            return self.vhost.declare_queue(name, self, exclusive=True)  # type: ignore[arg-type]
        arguments = {"x-expires": self.session_expiry * 1000}
        return self.vhost.declare_queue(name, None, durable=True, arguments=arguments)

    def _binding_arguments(self, subscription: p.Subscription, identifier: int | None) -> dict[str, Any]:
        """MQTT 5 keeps the subscription options on the binding, as RabbitMQ does, so that a resumed
        session knows them; 3.x bindings have none."""
        if not self.v5:
            return {}
        options: dict[str, Any] = {
            "no-local": subscription.no_local,
            "qos": subscription.qos,
            "retain-as-published": subscription.retain_as_published,
            "retain-handling": subscription.retain_handling,
        }
        if identifier is not None:
            options["id"] = identifier
        return {"x-binding-key": topics.to_amqp(subscription.topic_filter), SUBSCRIPTION_OPTIONS: options}

    def _bind(self, queue: Queue, subscription: p.Subscription, identifier: int | None) -> None:
        assert self.exchange is not None
        self._authorize("write", "queue", queue.name)
        self._authorize("read", "exchange", self.exchange.name)
        existing = self.subscriptions.get(subscription.topic_filter)
        if existing is not None and existing.qos == subscription.qos:
            # The same filter with new options: the old binding makes way for the new one.
            self._unbind(existing, self.subscription_ids.get(subscription.topic_filter))
        arguments = self._binding_arguments(subscription, identifier)
        self.vhost.bind(self.exchange, queue, topics.to_amqp(subscription.topic_filter), arguments)

    def _unbind(
        self, subscription: p.Subscription, identifier: int | None, only_other_queue: Queue | None = None
    ) -> None:
        assert self.exchange is not None
        queue = self.vhost.queues.get(self.queue_name(subscription.qos))
        if queue is None or queue is only_other_queue:
            return
        arguments = self._binding_arguments(subscription, identifier)
        self.vhost.unbind(self.exchange, queue, topics.to_amqp(subscription.topic_filter), arguments)

    def _consume(self, queue: Queue, qos: int) -> None:
        if qos in self.consumers:
            return
        self._authorize("read", "queue", queue.name)
        consumer = Consumer(
            self,  # type: ignore[arg-type]
            queue,
            CONSUMER_TAG,
            no_ack=qos == 0,
            exclusive=False,
            prefetch=self.prefetch,
            arguments={},
        )
        self.consumers[qos] = consumer
        queue.add_consumer(consumer)

    def _on_unsubscribe(self, packet: p.Unsubscribe) -> None:
        codes = []
        for topic_filter in packet.topic_filters:
            subscription = self.subscriptions.get(topic_filter)
            if subscription is None:
                codes.append(p.NO_SUBSCRIPTION_EXISTED)
                continue
            try:
                self._authorize("write", "queue", self.queue_name(subscription.qos))
                self._unbind(subscription, self.subscription_ids.get(topic_filter))
            except ChannelError:
                codes.append(p.NOT_AUTHORIZED)
                continue
            del self.subscriptions[topic_filter]
            self.subscription_ids.pop(topic_filter, None)
            codes.append(p.SUCCESS)
        self._subscriptions_changed()
        self.send(p.UnsubAck(packet.packet_id, codes if self.v5 else []))

    def _subscriptions_changed(self) -> None:
        self._no_local_count = sum(1 for subscription in self.subscriptions.values() if subscription.no_local)

    def _send_retained(self, topic_filter: str, qos: int) -> None:
        """RabbitMQ looks a retained message up by the filter as a topic: exact matches only."""
        message = self.node.retained.lookup(self.vhost.name, topic_filter)
        if message is None:
            return
        qos = min(qos, message.qos)
        properties = dict(message.properties) if self.v5 else {}
        if self.v5 and message.expires_at:
            properties["message_expiry_interval"] = max(int(message.expires_at - time.time()), 0)
        packet_id = self._take_packet_id(Delivery(None, None)) if qos else None
        self._send_publish(p.Publish(message.topic, message.payload, qos, True, False, packet_id, properties))

    # --- deliveries to the client ------------------------------------------------------------

    def deliver(self, consumer: Consumer, entry: QueuedMessage, queue: Queue | None) -> None:
        """A queue hands us a message: PUBLISH it at the lower of its QoS and the subscription's."""
        assert queue is not None
        message = entry.message
        qos = 0 if consumer.no_ack else convert.message_qos(message)
        if consumer.no_ack:
            queue.stats.deliver_no_ack += 1
        elif qos == 0:
            # A QoS 0 message on a QoS 1 subscription: nothing to wait for.
            consumer.unacked -= 1
            queue.settled([entry])
            queue.stats.deliver += 1
            queue.stats.ack += 1
        else:
            queue.stats.deliver += 1
        if entry.redelivered and qos == 0:
            return  # "at most once": not sent again
        counters = self.counters
        counters["delivered"] += 1
        counters["delivered_consume_manual_ack" if qos else "delivered_consume_auto_ack"] += 1
        if entry.redelivered:
            counters["redelivered"] += 1
        properties = self._delivery_properties(message) if self.v5 else {}
        packet_id = self._take_packet_id(Delivery(entry, queue)) if qos else None
        topic = topics.to_mqtt(message.routing_key)
        self._send_publish(
            p.Publish(
                topic,
                message.body,
                qos,
                self._retain_flag(message, topic),
                entry.redelivered and qos > 0,
                packet_id,
                properties,
            )
        )

    def _retain_flag(self, message: Message, topic: str) -> bool:
        """RETAIN on a routed message: only for a retained publish, through a matching
        subscription with Retain As Published (MQTT 5), as RabbitMQ's retain/3."""
        if not getattr(message, "retain", False):
            return False
        return any(
            subscription.retain_as_published and topics.matches(topic_filter, topic)
            for topic_filter, subscription in self.subscriptions.items()
        )

    def _delivery_properties(self, message: Message) -> dict[str, Any]:
        properties = convert.publish_properties(message)
        topic = topics.to_mqtt(message.routing_key)
        ids = [
            self.subscription_ids[topic_filter]
            for topic_filter in self.subscriptions
            if topic_filter in self.subscription_ids and topics.matches(topic_filter, topic)
        ]
        if ids:
            properties["subscription_identifier"] = ids
        return properties

    def _send_publish(self, packet: p.Publish) -> None:
        topic = packet.topic
        new_alias = self._alias_outbound(packet) if self.alias_max_out else False
        data = encode(packet, self.level)
        if self.max_packet_out and len(data) > self.max_packet_out:
            # "The Server MUST NOT send packets exceeding Maximum Packet Size": dropped, as RabbitMQ does.
            if new_alias:
                del self.aliases_out[topic]  # the client never heard of it
            if packet.packet_id is not None:
                self._settle(packet.packet_id)
            return
        self._send_data(data)

    def _alias_outbound(self, packet: p.Publish) -> bool:
        """A topic already sent with an alias goes as the alias alone; new ones get the next alias
        while there are any left (True when this packet sets one)."""
        alias = self.aliases_out.get(packet.topic)
        if alias is not None:
            packet.properties["topic_alias"] = alias
            packet.topic = ""
            return False
        if len(self.aliases_out) < self.alias_max_out:
            alias = self.aliases_out[packet.topic] = len(self.aliases_out) + 1
            packet.properties["topic_alias"] = alias
            return True
        return False

    def _take_packet_id(self, delivery: Delivery) -> int:
        packet_id = self._next_packet_id
        while packet_id in self.unacked:
            packet_id = packet_id % 65535 + 1
        self._next_packet_id = packet_id % 65535 + 1
        self.unacked[packet_id] = delivery
        return packet_id

    def _on_puback(self, packet: p.PubAck) -> None:
        self._settle(packet.packet_id)
        self._refill()

    def _settle(self, packet_id: int) -> None:
        delivery = self.unacked.pop(packet_id, None)
        if delivery is None or delivery.entry is None or delivery.queue is None:
            return
        queue = delivery.queue
        consumer = self.consumers.get(1)
        if consumer is not None and consumer.queue is queue:
            consumer.unacked -= 1
        if not queue.deleted:
            queue.settled([delivery.entry])
            queue.stats.ack += 1
        self.counters["acknowledged"] += 1

    def _refill(self) -> None:
        """Room again (an ack, or the socket drained): each consumer whose own window is open goes
        back to its queue's ring (broker/consumer_ring.py), and the queue dispatches."""
        for consumer in list(self.consumers.values()):
            consumer.parked = False
            queue = consumer.queue
            if not consumer.window_full() and queue.take_back(consumer) and queue.ready:
                queue.dispatch()

    def park(self, consumer: Consumer) -> None:
        """The consumer's turn came while this connection could take no deliveries; ``_refill``
        brings it back."""
        consumer.parked = True

    def unpark(self, consumer: Consumer) -> None:
        consumer.parked = False

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """A session queue was deleted under us (by an operator, or with its vhost): the session is
        broken, so the connection goes, as RabbitMQ's does ("consuming queue down")."""
        for qos, mine in list(self.consumers.items()):
            if mine is consumer:
                del self.consumers[qos]
                for topic_filter in [t for t, s in self.subscriptions.items() if s.qos == qos]:
                    del self.subscriptions[topic_filter]
                self._subscriptions_changed()
                log.info("closing MQTT connection %s: its queue '%s' was deleted", self.name, consumer.queue.name)
                self.close(p.IMPLEMENTATION_SPECIFIC_ERROR)

    # --- DISCONNECT, will, takeover, close ---------------------------------------------------

    def _on_disconnect(self, packet: p.Disconnect) -> None:
        if packet.reason_code != p.DISCONNECT_WITH_WILL:
            self.will = None  # a normal DISCONNECT discards the will
        requested = packet.properties.get("session_expiry_interval")
        if requested is not None and self.v5:
            if self.session_expiry == 0 and requested > 0:
                # "a Protocol Error to set a non-zero Session Expiry Interval in the DISCONNECT"
                # when CONNECT said 0; RabbitMQ ignores it, the client being gone anyway.
                log.warning("MQTT client %s: session expiry in DISCONNECT ignored, CONNECT said 0", self.client_id)
            else:
                maximum = self.config.mqtt_max_session_expiry_interval
                self.session_expiry = maximum if requested == UINT_MAX else min(requested, maximum)
                for qos in (0, 1):
                    queue = self.vhost.queues.get(self.queue_name(qos))
                    if queue is not None:
                        self._set_queue_expiry(queue)
        self._finish()

    def _set_queue_expiry(self, queue: Queue) -> None:
        """The session's queues expire with it: x-expires follows the Session Expiry Interval
        the client gave last (RabbitMQ's update_session_expiry_interval)."""
        if queue.exclusive:
            return
        wanted = self.session_expiry * 1000
        if queue.arguments.get("x-expires") == wanted or wanted <= 0:
            return
        queue.arguments["x-expires"] = wanted
        queue.apply_settings(queue.policy)
        if self.vhost.persistence is not None and queue.durable:
            self.vhost.persistence.queue_declared(queue)  # the store keeps the new arguments

    def taken_over(self) -> None:
        """Another connection took our client id: MQTT 5 hears DISCONNECT 0x8E, and we go now."""
        log.info("MQTT connection %s: client ID %s taken over by a new connection", self.name, self.client_id)
        if self.v5:
            self.send(p.Disconnect(p.SESSION_TAKEN_OVER))
        self._finish()
        self._release(send_will=True)

    def close(self, reason: int) -> None:
        """A server-side close: MQTT 5 hears DISCONNECT with the reason code first."""
        if self.finished:
            return
        if self.v5 and self.state is State.OPEN:
            self.send(p.Disconnect(reason))
        self._finish()

    def close_with_error(self, error: AMQPError) -> None:
        """The broker closes connections (shutdown, management): MQTT 5 hears why."""
        reason = p.SERVER_SHUTTING_DOWN if "shutdown" in error.reply_text else p.ADMINISTRATIVE_ACTION
        if reason == p.SERVER_SHUTTING_DOWN:
            self.will = None  # the broker is going: nobody would be there to receive it
        log.info("closing MQTT connection %s: %s", self.name, error.reply_text)
        self.close(reason)

    def connection_lost(self) -> None:
        """The socket is gone: publish the will unless DISCONNECT discarded it, and let go."""
        self._release(send_will=True)

    def _release(self, send_will: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = State.CLOSED
        if self in self.broker.connections:
            self.broker.connections.discard(self)
            self.broker.churn.connection_closed += 1
        if self.vhost is None:
            return
        for consumer in self.consumers.values():
            consumer.queue.remove_consumer(consumer)
        self.consumers.clear()
        back: dict[Queue, list[QueuedMessage]] = {}
        for delivery in self.unacked.values():
            if delivery.entry is not None and delivery.queue is not None and not delivery.queue.deleted:
                back.setdefault(delivery.queue, []).append(delivery.entry)
        self.unacked.clear()
        self.credit.forget()
        self.held = None
        for queue, entries in back.items():
            # The session's connection is gone: to a quorum queue these deliveries failed.
            queue.requeue(entries, delivery_failed=True)
        for queue in list(self.exclusive_queues):
            if not queue.deleted:
                self.vhost.delete_queue(queue)
        self.exclusive_queues.clear()
        self.node.unregister(self)
        if send_will and self.will is not None:
            self._send_will()

    def _send_will(self) -> None:
        will = self.will
        assert will is not None
        self.will = None
        delay = min(will.properties.get("will_delay_interval", 0), self.session_expiry) if self.v5 else 0
        if delay > 0:
            self._delay_will(will, delay)
            return
        self._publish_will(will)

    def _will_packet(self, will: p.Will) -> p.Publish:
        properties = {k: v for k, v in will.properties.items() if k != "will_delay_interval"}
        return p.Publish(will.topic, will.payload, min(will.qos, 1), will.retain, False, None, properties)

    def _delay_will(self, will: p.Will, delay: int) -> None:
        """As RabbitMQ does: the will waits in a queue of its own, ``mqtt-will-<client id>``, whose
        message TTL is the delay and whose dead-letter exchange is the MQTT exchange with the
        will's topic, so it is published when the delay is over, across a restart too (a QoS 1
        will is persistent), unless the client comes back first and the queue is deleted."""
        packet = self._will_packet(will)
        if not topics.valid_topic_name(packet.topic) or self.exchange is None:
            return
        name = f"{WILL_QUEUE_PREFIX}{self.client_id}"
        try:
            self._authorize("configure", "queue", name)
            self._authorize("write", "exchange", self.exchange.name)
            arguments = {
                "x-message-ttl": delay * 1000,
                # Gone some time after the will went, never before (RabbitMQ adds a margin too).
                "x-expires": delay * 1000 + WILL_QUEUE_MARGIN_MS,
                "x-dead-letter-exchange": self.exchange.name,
                "x-dead-letter-routing-key": topics.to_amqp(packet.topic),
            }
            existing = self.vhost.queues.get(name)
            if existing is not None:
                self.vhost.delete_queue(existing)
            self.vhost.declare_queue(name, None, durable=True, arguments=arguments)
        except ChannelError as error:
            log.debug("delayed will of MQTT client %s not kept: %s", self.client_id, error.reply_text)
            return
        message = convert.to_message("", packet, self.v5)
        message.routing_key = name
        self.vhost.publish(self.vhost.default_exchange, message)

    def _publish_will(self, will: p.Will) -> None:
        packet = self._will_packet(will)
        if not topics.valid_topic_name(packet.topic) or self.exchange is None:
            return
        try:
            self._authorize("write", "exchange", self.exchange.name)
        except ChannelError:
            log.debug("will message of MQTT client %s not sent: write access refused", self.client_id)
            return
        self.vhost.publish(self.exchange, convert.to_message(self.exchange.name, packet, self.v5))
        if packet.retain:
            self._retain(packet)

    def _cancel_pending_will(self) -> None:
        """A client that comes back within its Will Delay Interval cancels its delayed will."""
        queue = self.vhost.queues.get(f"{WILL_QUEUE_PREFIX}{self.client_id}")
        if queue is not None:
            self.vhost.delete_queue(queue)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
