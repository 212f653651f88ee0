"""What connection.start says about the server."""

from __future__ import annotations

from lapine import __version__
from lapine.amqp import spec
from lapine.auth import sasl
from lapine.broker.server_identity import CAPABILITIES, connection_start, default_cluster_name, server_properties


def test_the_properties_name_the_product_version_and_cluster() -> None:
    properties = server_properties("rabbit@here")
    assert properties["product"] == "Lapine"
    assert properties["version"] == __version__
    assert properties["cluster_name"] == "rabbit@here"
    assert properties["platform"].startswith("Python ")


def test_the_capabilities_are_rabbitmqs() -> None:
    capabilities = server_properties("c")["capabilities"]
    assert capabilities == {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "consumer_priorities": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
        "direct_reply_to": True,
    }


def test_each_connection_gets_its_own_capabilities_table() -> None:
    server_properties("c")["capabilities"]["basic.nack"] = False
    assert CAPABILITIES["basic.nack"] is True
    assert server_properties("c")["capabilities"]["basic.nack"] is True


def test_connection_start_is_0_9_with_our_mechanisms() -> None:
    start = connection_start(server_properties("c"))
    decoded = spec.decode_method(start.encode())
    assert isinstance(decoded, spec.ConnectionStart)
    assert (decoded.version_major, decoded.version_minor) == (0, 9)
    assert decoded.mechanisms == sasl.MECHANISMS
    assert decoded.locales == b"en_US"
    assert decoded.server_properties["cluster_name"] == "c"


def test_the_default_cluster_name_is_lapine_at_the_host() -> None:
    assert default_cluster_name().startswith("lapine@")
