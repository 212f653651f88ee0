"""Who the server says it is: what connection.start carries (RabbitMQ's server properties and
capabilities, the product, version and cluster name), and the name of the node."""

from __future__ import annotations

import platform
import socket
from typing import Any

from lapine import __version__
from lapine.amqp import spec
from lapine.auth import sasl

# What a client may rely on; the same names and values as RabbitMQ's (rabbit_reader.erl).
CAPABILITIES: dict[str, bool] = {
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
PRODUCT = "Lapine"
LOCALES = b"en_US"


def server_properties(cluster_name: str) -> dict[str, Any]:
    """What connection.start tells a client about us; the capabilities are RabbitMQ's."""
    return {
        "capabilities": dict(CAPABILITIES),
        "cluster_name": cluster_name,
        "copyright": "Copyright (c) the Lapine developers",
        "information": "Licensed under the MIT License",
        "platform": f"Python {platform.python_version()}",
        "product": PRODUCT,
        "version": __version__,
    }


def connection_start(properties: dict[str, Any]) -> spec.ConnectionStart:
    """The server's first method: AMQP 0-9-1, these properties, the SASL mechanisms we take."""
    return spec.ConnectionStart(
        version_major=0,
        version_minor=9,
        server_properties=properties,
        mechanisms=sasl.MECHANISMS,
        locales=LOCALES,
    )


def default_cluster_name() -> str:
    return f"lapine@{socket.gethostname()}"
