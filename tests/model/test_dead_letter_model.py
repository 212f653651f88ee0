"""Dead-lettering on the manual clock: where a message goes when it expires, is rejected or is
pushed out by a length limit, the x-death history it carries there, and cycles dropped."""

from __future__ import annotations

from lapine.amqp import spec
from lapine.amqp.codec import Timestamp
from lapine.testing.model import Content, ModelBroker, ModelClient


def dead_letter_queue(client: ModelClient, exchange: str = "dlx", queue: str = "dead") -> None:
    """A fanout dead-letter exchange with one queue behind it."""
    client.declare_exchange(exchange, "fanout")
    client.declare_queue(queue)
    client.bind(queue, exchange)


def take_all(client: ModelClient, queue: str) -> list[Content]:
    got = []
    while (message := client.get(queue, no_ack=True)) is not None:
        got.append(message)
    return got


def test_an_expired_message_is_dead_lettered_with_its_x_death(model: ModelBroker, client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-message-ttl": 50, "x-dead-letter-exchange": "dlx"})
    properties = spec.BasicProperties(expiration="20", headers={"app": "x"})
    client.publish(1, b"late", routing_key="q", properties=properties)
    model.advance(0.019)
    assert model.queue("dead").message_count == 0
    model.advance(0.002)
    (got,) = take_all(client, "dead")
    assert got.body == b"late"
    assert got.method.exchange == "dlx"
    assert got.method.routing_key == "q"
    assert got.properties.expiration is None  # taken off, so that it does not expire again
    headers = got.properties.headers
    assert headers is not None
    assert headers["app"] == "x"
    (death,) = headers["x-death"]
    assert isinstance(death.pop("time"), Timestamp)
    assert death == {
        "count": 1,
        "reason": "expired",
        "queue": "q",
        "exchange": "",
        "routing-keys": ["q"],
        "original-expiration": "20",
    }
    for prefix in ("x-first-death", "x-last-death"):
        assert (headers[f"{prefix}-reason"], headers[f"{prefix}-queue"], headers[f"{prefix}-exchange"]) == (
            "expired",
            "q",
            "",
        )


def test_rejected_and_nacked_messages_go_with_the_dead_letter_routing_key(client: ModelClient) -> None:
    client.declare_exchange("dlx", "direct")
    client.declare_queue("dead")
    client.bind("dead", "dlx", "failed")
    client.declare_queue("q", **{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "failed"})
    for body in (b"a", b"b", b"c"):
        client.publish(1, body, routing_key="q")
    tags = []
    for _ in range(3):
        got = client.get("q")
        assert got is not None
        tags.append(got.method.delivery_tag)
    client.reject(tags[0])
    client.nack(tags[2], multiple=True)
    dead = take_all(client, "dead")
    assert [message.body for message in dead] == [b"a", b"b", b"c"]
    assert {message.method.routing_key for message in dead} == {"failed"}
    for message in dead:
        assert message.properties.headers is not None
        assert message.properties.headers["x-death"][0]["reason"] == "rejected"
        assert message.properties.headers["x-death"][0]["routing-keys"] == ["q"]


def test_a_requeued_message_is_not_dead_lettered(model: ModelBroker, client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-dead-letter-exchange": "dlx"})
    client.publish(1, b"again", routing_key="q")
    got = client.get("q")
    assert got is not None
    client.reject(got.method.delivery_tag, requeue=True)
    assert model.queue("dead").message_count == 0
    assert client.get_bodies("q") == [b"again"]


def test_x_death_counts_each_lap_and_keeps_the_first_death(model: ModelBroker, client: ModelClient) -> None:
    """work --reject--> delay --expire--> work: one x-death entry per queue and reason, counting."""
    client.declare_queue("work", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "delay"})
    client.declare_queue(
        "delay", **{"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work"}
    )
    client.publish(1, b"job", routing_key="work")
    laps = 3
    for _ in range(laps):
        got = client.get("work")
        assert got is not None
        client.reject(got.method.delivery_tag)
        model.advance(0.011)
    got = client.get("work", no_ack=True)
    assert got is not None
    headers = got.properties.headers
    assert headers is not None
    deaths = [(d["queue"], d["reason"], d["count"]) for d in headers["x-death"]]
    assert deaths == [("delay", "expired", laps), ("work", "rejected", laps)]  # newest first
    assert (headers["x-first-death-queue"], headers["x-first-death-reason"]) == ("work", "rejected")
    assert (headers["x-last-death-queue"], headers["x-last-death-reason"]) == ("delay", "expired")


def test_max_length_drops_the_head_into_the_dead_letter_exchange(model: ModelBroker, client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-max-length": 2, "x-dead-letter-exchange": "dlx"})
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="q")
    assert client.get_bodies("q") == [b"3", b"4"]
    dead = take_all(client, "dead")
    assert [message.body for message in dead] == [b"0", b"1", b"2"]
    assert dead[0].properties.headers is not None
    assert dead[0].properties.headers["x-death"][0]["reason"] == "maxlen"


def test_reject_publish_dlx_dead_letters_the_refused_message(client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue(
        "q", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": "dlx"}
    )
    client.publish(1, b"kept", routing_key="q")
    client.publish(1, b"refused", routing_key="q")
    assert client.get_bodies("q") == [b"kept"]
    (dead,) = take_all(client, "dead")
    assert dead.body == b"refused"
    assert dead.properties.headers is not None
    assert dead.properties.headers["x-death"][0]["reason"] == "maxlen"


def test_an_expiry_cycle_back_to_the_same_queue_is_dropped(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue(
        "q", **{"x-message-ttl": 30, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"}
    )
    client.publish(1, b"round and round", routing_key="q")
    model.advance(0.031)
    assert model.queue("q").message_count == 0
    model.advance(1)
    assert model.queue("q").message_count == 0


def test_an_expiry_cycle_through_two_queues_is_dropped_when_it_comes_round(
    model: ModelBroker, client: ModelClient
) -> None:
    client.declare_queue("a", **{"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
    client.declare_queue("b", **{"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "a"})
    client.publish(1, b"lap", routing_key="a")
    model.advance(0.011)
    assert (model.queue("a").message_count, model.queue("b").message_count) == (0, 1)
    model.advance(0.011)  # back to a, where it already expired: a cycle
    assert (model.queue("a").message_count, model.queue("b").message_count) == (0, 0)


def test_a_missing_dead_letter_exchange_drops_the_message(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-message-ttl": 10, "x-dead-letter-exchange": "nowhere"})
    client.publish(1, b"lost", routing_key="q")
    model.advance(0.011)
    assert model.queue("q").message_count == 0
    assert not [item for _channel, item in client.take() if isinstance(item, spec.ChannelClose)]


def test_a_message_that_expired_while_unacked_dies_when_it_is_requeued(model: ModelBroker, client: ModelClient) -> None:
    """The TTL counts from the publish, not from the requeue: back at the head, it is dead."""
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-message-ttl": 100, "x-dead-letter-exchange": "dlx"})
    client.publish(1, b"slow", routing_key="q")
    got = client.get("q")
    assert got is not None
    model.advance(0.2)
    client.reject(got.method.delivery_tag, requeue=True)
    assert model.queue("q").message_count == 0
    (dead,) = take_all(client, "dead")
    assert dead.properties.headers is not None
    assert dead.properties.headers["x-death"][0]["reason"] == "expired"


def test_the_messages_of_an_expired_queue_are_not_dead_lettered(model: ModelBroker, client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-expires": 100, "x-dead-letter-exchange": "dlx"})
    client.publish(1, b"goes with the queue", routing_key="q")
    model.advance(0.101)
    assert not model.has_queue("q")
    assert model.queue("dead").message_count == 0


def test_routing_keys_of_x_death_are_the_key_and_cc_never_bcc(client: ModelClient) -> None:
    dead_letter_queue(client)
    client.declare_queue("q", **{"x-dead-letter-exchange": "dlx"})
    client.declare_queue("copy")
    client.declare_queue("hidden")
    headers = {"CC": ["copy"], "BCC": ["hidden"]}
    client.publish(1, b"m", routing_key="q", properties=spec.BasicProperties(headers=headers))
    got = client.get("q")
    assert got is not None
    client.reject(got.method.delivery_tag)
    (dead,) = take_all(client, "dead")
    assert dead.properties.headers is not None
    assert dead.properties.headers["x-death"][0]["routing-keys"] == ["q", "copy"]
    assert "BCC" not in dead.properties.headers
