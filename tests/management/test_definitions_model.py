"""lapine.broker.definitions on the model alone: no sockets, no HTTP."""

from __future__ import annotations

import pytest

from lapine.auth.passwords import hash_password
from lapine.auth.permissions import TopicPermission
from lapine.broker import definitions, definitions_format
from lapine.broker.broker import Broker


def test_a_new_vhost_has_the_standard_exchanges_and_metadata() -> None:
    broker = Broker()
    vhost, created = definitions.add_vhost(broker, "orders", description="Order flow", tags=["prod"])
    assert created
    assert {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"} <= set(vhost.exchanges)
    metadata = definitions.vhost_metadata(vhost)
    assert (metadata.description, metadata.tags) == ("Order flow", ["prod"])
    assert definitions.add_vhost(broker, "orders")[1] is False
    with pytest.raises(definitions.DefinitionError):
        definitions.add_vhost(broker, "")


def test_deleting_a_vhost_takes_its_queues_and_permissions() -> None:
    broker = Broker()
    vhost, _created = definitions.add_vhost(broker, "gone")
    vhost.declare_queue("q", None)
    definitions.set_permissions(broker, "guest", "gone", ".*", ".*", ".*")
    assert definitions.delete_vhost(broker, "gone")
    assert "gone" not in broker.vhosts
    assert broker.permissions.get("guest", "gone") is None
    assert not definitions.delete_vhost(broker, "gone")


def test_users_tags_and_passwords() -> None:
    broker = Broker()
    assert definitions.parse_tags("administrator, monitoring,") == ["administrator", "monitoring"]
    assert definitions.parse_tags(["management"]) == ["management"]
    definitions.add_user(broker, "ann", "pw", "management")
    with pytest.raises(definitions.DefinitionError):
        definitions.add_user(broker, "ann", "again")
    definitions.set_user_tags(broker, "ann", "monitoring,policymaker")
    assert broker.users.get("ann").tags == ["monitoring", "policymaker"]  # type: ignore[union-attr]
    definitions.change_password(broker, "ann", "new")
    assert broker.users.authenticate("ann", "new", "10.0.0.1") is not None
    assert broker.users.get("ann").tags == ["monitoring", "policymaker"]  # type: ignore[union-attr]
    # Only the tags change when neither a password nor a hash is given.
    definitions.put_user(broker, "ann", tags="management")
    assert broker.users.authenticate("ann", "new", "10.0.0.1") is not None
    definitions.put_user(broker, "bob", password_hash=hash_password("x"), tags=[])
    assert broker.users.authenticate("bob", "x", "10.0.0.1") is not None
    definitions.clear_password(broker, "bob")
    assert broker.users.authenticate("bob", "x", "10.0.0.1") is None
    with pytest.raises(definitions.DefinitionError):
        definitions.put_user(broker, "eve", password="x", hashing_algorithm="rabbit_password_hashing_rot13")
    assert definitions.delete_user(broker, "ann") and not definitions.delete_user(broker, "ann")


def test_permissions_need_user_and_vhost_and_valid_patterns() -> None:
    broker = Broker()
    with pytest.raises(definitions.DefinitionError, match="vhost_or_user_not_found"):
        definitions.set_permissions(broker, "nobody", "/", ".*", ".*", ".*")
    with pytest.raises(definitions.DefinitionError, match="invalid_regexp"):
        definitions.set_permissions(broker, "guest", "/", "(", ".*", ".*")
    assert definitions.set_permissions(broker, "guest", "/", "^a", ".*", ".*") is False
    assert definitions.clear_permissions(broker, "guest", "/")


def test_export_then_import_into_a_fresh_broker() -> None:
    source = Broker()
    vhost, _created = definitions.add_vhost(source, "shop", description="shop")
    definitions.add_user(source, "clerk", "pw", "management")
    definitions.set_permissions(source, "clerk", "shop", ".*", ".*", ".*")
    queue = vhost.declare_queue("orders", None, durable=True, arguments={"x-max-length": 10})
    exchange = vhost.declare_exchange("events", "topic", durable=True)
    vhost.bind(exchange, queue, "order.*", {})
    vhost.bind(exchange, vhost.exchanges["amq.fanout"], "audit", {})
    exported = definitions_format.export_definitions(source)
    assert exported["queues"] == [
        {"name": "orders", "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {"x-max-length": 10}}
    ]
    assert all(x["name"] not in ("", "amq.direct") for x in exported["exchanges"])
    target = Broker()
    definitions_format.import_definitions(target, exported)
    imported = target.vhosts["shop"]
    assert imported.queues["orders"].arguments == {"x-max-length": 10}
    assert imported.exchanges["events"].type == "topic"
    assert target.users.authenticate("clerk", "pw", "10.0.0.1") is not None
    assert target.permissions.can_access("clerk", "shop")
    bindings = definitions_format.bindings_of(imported)
    assert sorted((b["destination"], b["routing_key"]) for b in bindings if b["source"]) == [
        ("amq.fanout", "audit"),
        ("orders", "order.*"),
    ]
    # Importing again changes nothing; an inequivalent queue is left as it is, as RabbitMQ does.
    exported["queues"][0]["durable"] = False
    definitions_format.import_definitions(target, exported)
    assert imported.queues["orders"].durable is True


def test_import_errors_are_definition_errors() -> None:
    broker = Broker()
    with pytest.raises(definitions.DefinitionError):
        definitions_format.import_definitions(broker, {"queues": [{"name": "q", "vhost": "missing"}]})
    with pytest.raises(definitions.DefinitionError):
        definitions_format.import_definitions(broker, {"users": [{"password": "no name"}]})


def test_topic_permissions_and_vhost_limits_go_out_and_come_back() -> None:
    broker = Broker()
    definitions.set_topic_permissions(broker, "guest", "/", "amq.topic", "^w", "^r")
    definitions.set_vhost_limit(broker, broker.vhosts["/"], "max-queues", 7)
    exported = definitions_format.export_definitions(broker)
    assert exported["topic_permissions"] == [
        {"user": "guest", "vhost": "/", "exchange": "amq.topic", "write": "^w", "read": "^r"}
    ]
    assert exported["parameters"] == [
        {"value": {"max-queues": 7}, "vhost": "/", "component": "vhost-limits", "name": "limits"}
    ]
    other = Broker()
    definitions_format.import_definitions(other, exported)
    assert other.vhosts["/"].limits == {"max-queues": 7}
    assert list(other.permissions.topic.values()) == list(broker.permissions.topic.values())
    assert definitions_format.export_definitions(broker, "/")["parameters"] == [
        {"value": {"max-queues": 7}, "component": "vhost-limits", "name": "limits"}
    ]


def test_topic_permissions_go_with_their_user_and_vhost() -> None:
    broker = Broker()
    definitions.add_vhost(broker, "v")
    definitions.add_user(broker, "ann", "pw")
    assert definitions.set_topic_permissions(broker, "ann", "v", "amq.topic", "", "")
    assert not definitions.set_topic_permissions(broker, "ann", "v", "other", "", "")
    definitions.set_topic_permissions(broker, "ann", "/", "amq.topic", "", "")
    definitions.delete_vhost(broker, "v")
    assert [p.vhost for p in broker.permissions.topic.values()] == ["/"]
    definitions.delete_user(broker, "ann")
    assert broker.permissions.topic == {}
    with pytest.raises(definitions.DefinitionError):
        definitions.set_topic_permissions(broker, "nobody", "/", "amq.topic", "", "")


def test_topic_patterns_as_rabbitmq_reads_them() -> None:
    """An empty pattern is "^$"; {username} and {vhost} are replaced, escaped."""
    permission = TopicPermission("a.b", "v", "amq.topic", write="", read="^{username}\\.{vhost}$")
    assert permission.allows("write", "") and not permission.allows("write", "x")
    assert permission.allows("read", "a.b.v")
    assert not permission.allows("read", "aXb.v")
