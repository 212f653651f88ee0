"""Hypothesis strategies for whole client conversations: a login, then a random sequence of
valid methods and publishes, as the bytes the client writes. The strategy keeps the client's
side of the state (channels open, their mode, consumer tags, queues declared) so that nothing
it sends is an error: every step is acted on, none is dropped behind a closed channel.

Nothing in them depends on the broker's answers, so one conversation can be replayed against
fresh brokers and the answers compared. Queue names and consumer tags are chosen by the client
(server-named ones are random), and nothing dead-letters (x-death carries the wall-clock time).
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.frames import content_frames, method_frame
from lapine.testing.model import handshake_frames

# Examples per property test; for a longer hunt: LAPINE_MODEL_EXAMPLES=2000 python -m pytest tests/model
EXAMPLES = int(os.environ.get("LAPINE_MODEL_EXAMPLES", "100"))

QUEUES = ["q1", "q2", "q3"]

queue_arguments = st.sampled_from(
    [
        {},
        {},
        {"x-max-length": 2},
        {"x-max-length": 1, "x-overflow": "reject-publish"},
        {"x-max-priority": 3},
        {"x-message-ttl": 60_000},
        {"x-single-active-consumer": True},
    ]
)

properties = st.builds(
    spec.BasicProperties,
    content_type=st.sampled_from([None, "text/plain"]),
    headers=st.sampled_from([None, {"k": 1}, {"CC": ["q2"]}, {"BCC": ["q1"]}]),
    delivery_mode=st.sampled_from([None, 1, 2]),
    priority=st.sampled_from([None, 0, 2, 9]),
    expiration=st.sampled_from([None, None, "0", "60000"]),
    message_id=st.sampled_from([None, "m"]),
)


class ClientState:
    """What the client knows of its own conversation, so that every method it sends is valid."""

    def __init__(self, arguments: dict[str, dict[str, object]]) -> None:
        self.arguments = arguments  # each queue is always declared with the same arguments
        self.declared: set[str] = set()
        self.open = {1: True, 2: True}
        self.mode: dict[int, str] = {1: "", 2: ""}  # "", "tx" or "confirm"
        self.consumers: dict[int, list[str]] = {1: [], 2: []}
        self.next_tag = 0

    def open_channels(self) -> list[int]:
        return [channel for channel, is_open in self.open.items() if is_open]


def _publish(draw: st.DrawFn, channel: int) -> bytes:
    exchange, routing_key = draw(
        st.sampled_from([("", "q1"), ("", "q2"), ("", "q3"), ("", "nowhere"), ("amq.fanout", ""), ("amq.direct", "q1")])
    )
    method = spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=draw(st.booleans()))
    body = draw(st.binary(max_size=300))
    # A small frame_max splits the body into several body frames, as clients do for big bodies.
    frame_max = draw(st.sampled_from([0, 0, 64, 4096]))
    return content_frames(channel, method, draw(properties).encode(), body, frame_max)


def _queue_method(draw: st.DrawFn, state: ClientState, channel: int) -> spec.Method:
    queue = draw(st.sampled_from(QUEUES))
    if queue not in state.declared:
        state.declared.add(queue)
        return spec.QueueDeclare(queue=queue, arguments=state.arguments[queue])
    kind = draw(st.sampled_from(["declare", "passive", "bind", "unbind", "purge", "get", "get", "consume", "delete"]))
    if kind == "declare":
        return spec.QueueDeclare(queue=queue, arguments=state.arguments[queue])
    if kind == "passive":
        return spec.QueueDeclare(queue=queue, passive=True)
    if kind == "bind":
        return spec.QueueBind(queue=queue, exchange="amq.fanout")
    if kind == "unbind":
        return spec.QueueUnbind(queue=queue, exchange="amq.fanout")
    if kind == "purge":
        return spec.QueuePurge(queue=queue)
    if kind == "get":
        return spec.BasicGet(queue=queue, no_ack=draw(st.booleans()))
    if kind == "consume":
        state.next_tag += 1
        tag = f"c{state.next_tag}"
        state.consumers[channel].append(tag)
        arguments = draw(st.sampled_from([{}, {"x-priority": 5}]))
        return spec.BasicConsume(queue=queue, consumer_tag=tag, no_ack=draw(st.booleans()), arguments=arguments)
    state.declared.discard(queue)
    return spec.QueueDelete(queue=queue)


def _channel_method(draw: st.DrawFn, state: ClientState, channel: int) -> spec.Method:
    kind = draw(
        st.sampled_from(["qos", "ack all", "nack all", "recover", "cancel", "tx", "commit", "rollback", "confirm"])
    )
    mode = state.mode[channel]
    if kind == "qos":
        return spec.BasicQos(prefetch_count=draw(st.integers(0, 3)))
    if kind == "ack all":  # delivery tag 0 with multiple: everything unacked, always valid
        return spec.BasicAck(delivery_tag=0, multiple=True)
    if kind == "nack all":
        return spec.BasicNack(delivery_tag=0, multiple=True, requeue=draw(st.booleans()))
    if kind == "cancel" and state.consumers[channel]:
        tag = draw(st.sampled_from(state.consumers[channel]))
        state.consumers[channel].remove(tag)
        return spec.BasicCancel(consumer_tag=tag)
    if kind == "tx" and mode != "confirm":
        state.mode[channel] = "tx"
        return spec.TxSelect()
    if kind in ("commit", "rollback") and mode == "tx":
        return spec.TxCommit() if kind == "commit" else spec.TxRollback()
    if kind == "confirm" and mode != "tx":
        state.mode[channel] = "confirm"
        return spec.ConfirmSelect()
    return spec.BasicRecover(requeue=True)


def _step(draw: st.DrawFn, state: ClientState) -> bytes:
    kind = draw(st.sampled_from(["publish", "publish", "publish", "queue", "queue", "queue", "channel", "open/close"]))
    if kind == "open/close":
        # Channel 2 closes and opens again: a new channel, with nothing of the old one's state.
        if state.open[2]:
            state.open[2] = False
            return method_frame(2, spec.ChannelClose(reply_code=200))
        state.open[2] = True
        state.mode[2], state.consumers[2] = "", []
        return method_frame(2, spec.ChannelOpen())
    channel = draw(st.sampled_from(state.open_channels()))
    if kind == "publish":
        return _publish(draw, channel)
    if kind == "queue":
        return method_frame(channel, _queue_method(draw, state, channel))
    return method_frame(channel, _channel_method(draw, state, channel))


@st.composite
def conversations(draw: st.DrawFn) -> bytes:
    """A login, channels 1 and 2 opened, the queues declared, then up to 40 valid steps."""
    state = ClientState({queue: draw(queue_arguments) for queue in QUEUES})
    opening = handshake_frames() + method_frame(1, spec.ChannelOpen()) + method_frame(2, spec.ChannelOpen())
    opening += b"".join(method_frame(1, spec.QueueDeclare(queue=q, arguments=state.arguments[q])) for q in QUEUES)
    state.declared.update(QUEUES)
    count = draw(st.integers(3, 40))
    return opening + b"".join(_step(draw, state) for _ in range(count))
