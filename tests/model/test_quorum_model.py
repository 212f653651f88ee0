"""Quorum queues on the manual clock: the vhost's default type, delivery counts and the delivery
limit, returns, reject-publish, at-least-once dead-lettering with its retries, TTLs and expiry."""

from __future__ import annotations

from typing import Any

import pytest

from lapine.amqp import spec
from lapine.broker.definitions_format import export_definitions, import_definitions
from lapine.broker.policies import Policy
from lapine.broker.quorum_queue import DEAD_LETTER_RETRY_SECONDS, QuorumQueue, resolve_delivery_limit
from lapine.testing.model import Content, ModelBroker, ModelClient

QUORUM = {"x-queue-type": "quorum"}


def declare(client: ModelClient, name: str, **arguments: Any) -> QuorumQueue:
    client.declare_queue(name, durable=True, **{**QUORUM, **arguments})
    queue = client.broker.vhosts["/"].queues[name]
    assert isinstance(queue, QuorumQueue)
    return queue


def at_least_once(target_key: str, **more: Any) -> dict[str, Any]:
    return {
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": target_key,
        **more,
    }


def fail_delivery(model: ModelBroker, queue: str) -> Content:
    """A delivery whose channel goes away unacknowledged (a failed delivery, to rabbit_fifo)."""
    taker = model.client()
    got = taker.get(queue)
    assert got is not None
    taker.disconnect()
    return got


# --- the vhost's default queue type -----------------------------------------------------------


def test_the_vhost_default_makes_durable_queues_quorum(model: ModelBroker, client: ModelClient) -> None:
    model.broker.vhosts["/"].metadata.default_queue_type = "quorum"
    client.declare_queue("jobs", durable=True)
    jobs = model.queue("jobs")
    assert isinstance(jobs, QuorumQueue)
    assert jobs.arguments == {"x-queue-type": "quorum"}  # kept with it, as RabbitMQ does
    client.declare_queue("jobs", durable=True)  # the same declare again is equivalent
    # What a quorum queue cannot be stays classic.
    client.declare_queue("scratch")
    client.method(1, spec.QueueDeclare(queue="mine", durable=True, exclusive=True))
    client.expect(spec.QueueDeclareOk)
    assert model.queue("scratch").type_name == model.queue("mine").type_name == "classic"


# --- delivery counts and the limit ------------------------------------------------------------


def test_the_default_delivery_limit_is_twenty_failed_deliveries(model: ModelBroker, client: ModelClient) -> None:
    declare(client, "q")
    client.publish(1, b"poison", routing_key="q")
    for attempt in range(1, 21):
        got = fail_delivery(model, "q")
        if attempt > 1:
            assert got.properties.headers == {"x-acquired-count": attempt - 1, "x-delivery-count": attempt - 1}
    fail_delivery(model, "q")  # the 21st failure passes the limit of 20
    assert model.queue("q").message_count == 0
    assert model.broker.vhosts["/"].dead_lettered[("rabbit_quorum_queue", "delivery_limit", "disabled")] == 1


@pytest.mark.parametrize(
    ("argument", "policy", "limit"),
    [(None, None, 20), (5, None, 5), (None, 3, 3), (5, 3, 3), (2, 7, 2), (-1, 4, 4), (-1, None, None), (3, -2, 3)],
)
def test_argument_and_policy_give_the_delivery_limit_as_rabbitmq(
    argument: int | None, policy: int | None, limit: int | None
) -> None:
    assert resolve_delivery_limit(argument, policy) == limit


def test_a_policy_lowers_the_delivery_limit(model: ModelBroker, client: ModelClient) -> None:
    queue = declare(client, "q", **{"x-delivery-limit": 5})
    model.broker.vhosts["/"].set_policy(Policy("/", "p", "^q$", {"delivery-limit": 1}))
    assert queue.delivery_limit == 1
    client.publish(1, b"m", routing_key="q")
    fail_delivery(model, "q")
    fail_delivery(model, "q")
    assert queue.message_count == 0


def test_without_a_limit_a_clients_requeue_goes_to_the_tail(model: ModelBroker, client: ModelClient) -> None:
    declare(client, "q", **{"x-delivery-limit": -1})
    for body in (b"a", b"b", b"c"):
        client.publish(1, body, routing_key="q")
    first = client.get("q")
    assert first is not None
    client.reject(first.method.delivery_tag, requeue=True)
    fail_delivery(model, "q")  # b: left by its channel, so it goes first again
    assert client.get_bodies("q") == [b"b", b"c", b"a"]


# --- reject-publish ---------------------------------------------------------------------------


def test_reject_publish_counts_held_dead_letters(model: ModelBroker, client: ModelClient) -> None:
    """Dead letters waiting for their target count against the source's limit, as in rabbit_fifo."""
    queue = declare(client, "src", **at_least_once("nowhere", **{"x-max-length": 1}))
    client.method(1, spec.ConfirmSelect())
    client.expect(spec.ConfirmSelectOk)
    client.publish(1, b"one", routing_key="src")
    got = client.get("src")
    assert got is not None
    client.reject(got.method.delivery_tag)
    assert (queue.message_count, len(queue.dead_letters)) == (0, 1)
    client.publish(1, b"two", routing_key="src")  # 1 held + 1 ready: over the limit of 1 once taken
    client.publish(1, b"three", routing_key="src")
    assert [(kind, tag) for kind, tag, _multiple in client.confirms()] == [("ack", 1), ("ack", 2), ("nack", 3)]


# --- at-least-once dead-lettering -------------------------------------------------------------


def reject_one(client: ModelClient, queue: str) -> None:
    got = client.get(queue)
    assert got is not None
    client.reject(got.method.delivery_tag)


def test_an_unroutable_dead_letter_waits_in_the_source_and_is_retried(
    model: ModelBroker, client: ModelClient
) -> None:
    source = declare(client, "src", **at_least_once("dead"))
    client.publish(1, b"m", routing_key="src")
    reject_one(client, "src")
    assert (source.message_count, len(source.dead_letters)) == (0, 1)
    client.declare_queue("dead", durable=True)
    model.advance(DEAD_LETTER_RETRY_SECONDS - 1)
    assert model.queue("dead").message_count == 0
    model.advance(1)
    (got,) = [client.get("dead", no_ack=True)]
    assert got is not None and got.body == b"m"
    assert got.properties.headers is not None and got.properties.headers["x-first-death-reason"] == "rejected"
    assert source.dead_letters == []
    assert model.broker.vhosts["/"].dead_lettered[("rabbit_quorum_queue", "rejected", "at_least_once")] == 1
    assert model.broker.vhosts["/"].dead_lettered[("rabbit_quorum_queue", "confirmed", "at_least_once")] == 1


def test_a_target_that_refuses_gets_it_once_it_has_room_and_no_target_twice(
    model: ModelBroker, client: ModelClient
) -> None:
    client.declare_exchange("dlx", "fanout")
    declare(client, "full", **{"x-overflow": "reject-publish", "x-max-length": 1})
    declare(client, "open")
    client.bind("full", "dlx")
    client.bind("open", "dlx")
    client.publish(1, b"filler", routing_key="full")
    client.publish(1, b"filler", routing_key="full")  # crosses the limit: "full" now refuses
    source = declare(
        client,
        "src",
        **{
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "dlx",
        },
    )
    client.publish(1, b"m", routing_key="src")
    reject_one(client, "src")
    assert len(source.dead_letters) == 1
    assert client.get_bodies("open") == [b"m"]
    assert client.get_bodies("full") == [b"filler", b"filler"]
    model.advance(DEAD_LETTER_RETRY_SECONDS)
    assert source.dead_letters == []
    assert client.get_bodies("full") == [b"m"]
    assert client.get_bodies("open") == []  # it had it already


def test_at_least_once_needs_reject_publish(model: ModelBroker, client: ModelClient) -> None:
    """With drop-head RabbitMQ falls back to at-most-once: an unroutable dead letter is gone."""
    arguments = at_least_once("nowhere")
    del arguments["x-overflow"]
    source = declare(client, "src", **arguments)
    assert not source.at_least_once
    client.publish(1, b"m", routing_key="src")
    reject_one(client, "src")
    assert source.dead_letters == []
    model.advance(DEAD_LETTER_RETRY_SECONDS)
    assert model.broker.vhosts["/"].dead_lettered[("rabbit_quorum_queue", "rejected", "at_most_once")] == 1


def test_a_purge_leaves_held_dead_letters(model: ModelBroker, client: ModelClient) -> None:
    source = declare(client, "src", **at_least_once("dead"))
    client.publish(1, b"dead", routing_key="src")
    client.publish(1, b"ready", routing_key="src")
    reject_one(client, "src")
    client.call(1, spec.QueuePurge(queue="src"), spec.QueuePurgeOk)
    assert (source.message_count, len(source.dead_letters)) == (0, 1)
    client.declare_queue("dead", durable=True)
    model.advance(DEAD_LETTER_RETRY_SECONDS)
    assert client.get_bodies("dead") == [b"dead"]


# --- TTLs and expiry --------------------------------------------------------------------------


def test_ttls_and_expiry_on_the_clock(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("dead")
    declare(client, "q", **{"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
    client.publish(1, b"short", routing_key="q", properties=spec.BasicProperties(expiration="10"))
    client.publish(1, b"long", routing_key="q")
    model.advance(0.011)
    assert model.queue("dead").message_count == 1
    model.advance(0.09)
    assert client.get_bodies("dead") == [b"short", b"long"]
    declare(client, "unused", **{"x-expires": 1000})
    model.advance(0.999)
    assert model.has_queue("unused")
    model.advance(0.002)
    assert not model.has_queue("unused")


def test_a_policys_overflow_wins_and_its_dead_letter_strategy_applies(model: ModelBroker, client: ModelClient) -> None:
    """As rabbit_quorum_queue resolves them: the policy's overflow over the argument, the
    argument's dead-letter settings over the policy's."""
    queue = declare(client, "q", **{"x-overflow": "drop-head", "x-dead-letter-exchange": "dlx"})
    assert (queue.overflow, queue.at_least_once) == ("drop-head", False)
    vhost = model.broker.vhosts["/"]
    vhost.set_policy(Policy("/", "p", "^q$", {"overflow": "reject-publish", "dead-letter-strategy": "at-least-once"}))
    assert (queue.overflow, queue.at_least_once) == ("reject-publish", True)
    vhost.set_policy(Policy("/", "p", "^q$", {"overflow": "reject-publish-dlx"}))
    assert queue.overflow == "drop-head"


def test_a_higher_priority_consumer_takes_over_once_the_active_one_has_acked(
    model: ModelBroker, client: ModelClient
) -> None:
    queue = declare(client, "q", **{"x-single-active-consumer": True})
    client.qos(1)
    client.consume("q", "low")
    client.publish(1, b"1", routing_key="q")
    (first,) = client.deliveries()
    other = model.client()
    other.consume("q", "high", **{"x-priority": 5})
    client.publish(1, b"2", routing_key="q")
    assert other.deliveries() == [] and client.deliveries() == []  # "low" drains first
    assert queue.active_consumer is not None and queue.active_consumer.tag == "low"
    client.ack(first.method.delivery_tag)
    assert [got.body for got in other.deliveries()] == [b"2"]
    assert queue.active_consumer is not None and queue.active_consumer.tag == "high"
    other.disconnect()
    client.publish(1, b"3", routing_key="q")
    # "high" left "2" unacknowledged: it comes back first, to "low" (prefetch 1), before "3".
    (again,) = client.deliveries()
    assert (again.body, again.method.redelivered) == (b"2", True)


def test_definitions_carry_a_quorum_queue_across_brokers(model: ModelBroker, client: ModelClient) -> None:
    declare(client, "jobs", **{"x-delivery-limit": 3})
    exported = export_definitions(model.broker)
    (jobs,) = [queue for queue in exported["queues"] if queue["name"] == "jobs"]
    assert jobs["arguments"] == {"x-queue-type": "quorum", "x-delivery-limit": 3}
    other = ModelBroker()
    import_definitions(other.broker, exported)
    copy = other.queue("jobs")
    assert isinstance(copy, QuorumQueue) and copy.delivery_limit == 3


def test_policies_apply_to_classic_or_quorum_queues_by_type(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("jobs.classic", durable=True)
    quorum = declare(client, "jobs.quorum")
    classic = model.queue("jobs.classic")
    vhost = model.broker.vhosts["/"]
    vhost.set_policy(Policy("/", "c", "^jobs", {"max-length": 1}, apply_to="classic_queues"))
    vhost.set_policy(Policy("/", "q", "^jobs", {"max-length": 2}, apply_to="quorum_queues"))
    assert (classic.max_length, quorum.max_length) == (1, 2)
    assert classic.policy is not None and quorum.policy is not None
    assert (classic.policy.name, quorum.policy.name) == ("c", "q")


def test_a_consumer_of_a_quorum_queue_may_set_its_own_timeout(model: ModelBroker, client: ModelClient) -> None:
    declare(client, "q", **{"x-consumer-timeout": 60_000})
    client.consume("q", "impatient", **{"x-consumer-timeout": 1000})
    client.publish(1, b"m", routing_key="q")
    assert len(client.deliveries()) == 1
    model.advance(0.999)
    assert client.received_of(spec.ChannelClose) == []
    model.advance(0.002)
    close = client.channel_closed()
    assert (close.reply_code, close.reply_text) == (
        406,
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1000 ms. "
        "This timeout value can be configured, see consumers doc guide to learn more",
    )


def test_messages_go_out_by_priority_returns_first(model: ModelBroker, client: ModelClient) -> None:
    """RabbitMQ 4.3's strict priorities: 0 to 31, 4 for a message without one, FIFO within one;
    a message handed back goes before all of them."""
    declare(client, "q")
    for body, priority in ((b"p0", 0), (b"none-1", None), (b"p9", 9), (b"p99", 99), (b"p4", 4), (b"none-2", None)):
        client.publish(1, body, routing_key="q", properties=spec.BasicProperties(priority=priority))
    first = client.get("q")
    assert first is not None and first.body == b"p99"  # clamped to 31, still the highest
    client.reject(first.method.delivery_tag, requeue=True)
    assert client.get_bodies("q") == [b"p99", b"p9", b"none-1", b"p4", b"none-2", b"p0"]
