"""Policies applied to queues and exchanges, with queue arguments taking precedence."""

from __future__ import annotations

from lapine.amqp import spec
from lapine.broker.broker import Broker
from lapine.broker.policies import Policy, validate
from lapine.broker.scheduler import ManualScheduler
from lapine.testing.model import ModelClient


def make_client() -> tuple[Broker, ModelClient]:
    broker = Broker(scheduler=ManualScheduler())
    client = ModelClient(broker)
    client.handshake()
    client.open_channel(1)
    return broker, client


def test_policy_sets_max_length_and_highest_priority_wins() -> None:
    broker, client = make_client()
    vhost = broker.vhosts["/"]
    vhost.set_policy(Policy("/", "loose", "^jobs", {"max-length": 10}, priority=0))
    vhost.set_policy(Policy("/", "tight", "^jobs\\.", {"max-length": 2}, priority=5))
    client.method(1, spec.QueueDeclare(queue="jobs.a"))
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="jobs.a")
    queue = vhost.queues["jobs.a"]
    assert [e.message.body for e in queue.ready] == [b"3", b"4"]
    vhost.clear_policy("tight")
    assert queue.max_length == 10


def test_queue_argument_and_policy_lower_length_wins_dlx_argument_wins() -> None:
    broker, client = make_client()
    vhost = broker.vhosts["/"]
    client.method(
        1,
        spec.QueueDeclare(queue="q", arguments={"x-max-length": 5, "x-dead-letter-exchange": "from-arguments"}),
    )
    vhost.set_policy(
        Policy("/", "p", ".*", {"max-length": 3, "dead-letter-exchange": "from-policy"}, apply_to="queues")
    )
    queue = vhost.queues["q"]
    assert queue.max_length == 3
    assert queue.dead_letter_exchange == "from-arguments"


def test_policy_alternate_exchange_applies_to_exchanges_only() -> None:
    broker, client = make_client()
    vhost = broker.vhosts["/"]
    vhost.set_policy(Policy("/", "ae", "^main$", {"alternate-exchange": "amq.fanout"}, apply_to="exchanges"))
    client.method(1, spec.ExchangeDeclare(exchange="main", type="direct"))
    client.method(1, spec.QueueDeclare(queue="fallback"))
    client.method(1, spec.QueueBind(queue="fallback", exchange="amq.fanout"))
    client.publish(1, b"unroutable", exchange="main", routing_key="x")
    assert vhost.queues["fallback"].message_count == 1


def test_invalid_policies_are_explained() -> None:
    assert validate(Policy("/", "p", "(", {"max-length": 1})) is not None
    assert validate(Policy("/", "p", ".*", {"max-length": 1}, apply_to="streams")) is not None
    unknown = Policy("/", "p", ".*", {"no-such-key": 1})
    assert validate(unknown) == '[{<<"no-such-key">>,1}] are not recognised policy settings'
    assert validate(Policy("/", "p", ".*", {"max-length": 1})) is None
