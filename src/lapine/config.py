"""Broker settings: RabbitMQ's defaults, overridden by a TOML file, the environment and flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class Config:
    host: str = ""  # every interface, IPv4 and IPv6
    port: int = 5672
    data_dir: str = ""
    log_level: str = "info"
    frame_max: int = 131072
    channel_max: int = 2047
    heartbeat: int = 60
    # RabbitMQ 4.x's default max_message_size (3.x allowed 128 MiB).
    max_message_size: int = 16 * 1024 * 1024
    # How long a delivery may stay unacknowledged before its channel is closed (RabbitMQ's default).
    consumer_timeout: int = 30 * 60 * 1000
    # Ready messages a queue keeps in memory; past them its backlog lives on disk only.
    queue_window: int = 10_000
    handshake_timeout: float = 10.0
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    # Management HTTP API + web UI, and Prometheus metrics (RabbitMQ's ports). Port 0 picks a free
    # port (tests); a negative port turns the listener off.
    management_port: int = 15672
    prometheus_port: int = 15692
    # Seconds a Prometheus scrape's answer is reused: however many scrapers, the metrics are rendered
    # at most once per interval on the event loop (0: every scrape). RabbitMQ's are 5 s old too.
    prometheus_cache_ttl: float = 5.0
    # Seconds between samples of the message counters behind the API's rates (RabbitMQ: 5).
    management_sample_interval: float = 5.0
    # Host names the management listener answers to beside localhost names, the addresses it
    # listens on and this machine's hostname (comma-separated; "*": any). Other names are refused
    # (403): a DNS-rebinding page cannot reach the API under its own name.
    management_allowed_hosts: str = ""
    # Client connections the node accepts (RabbitMQ's connection_max); 0: no limit, its default.
    connection_max: int = 0
    # Consumers one channel may have (RabbitMQ's consumer_max_per_channel); 0: no limit, its default
    # ("infinity").
    consumer_max_per_channel: int = 0
    # Memory alarm: publishers are blocked while the broker's resident memory is above this share of
    # RAM (RabbitMQ's vm_memory_high_watermark.relative, 0.6 since 3.13), or above
    # vm_memory_high_watermark_absolute bytes when that is set (0: not set).
    vm_memory_high_watermark: float = 0.6
    vm_memory_high_watermark_absolute: int = 0
    # Disk alarm: publishers are blocked while the data directory's filesystem has less free (bytes).
    disk_free_limit: int = 50_000_000
    # Seconds between samples of memory and disk for the alarms.
    alarm_check_interval: float = 1.0
    # Seconds a failed login waits for its answer: slows down password guessing (0: none). Over
    # HTTP, failures from one source address (an IPv6 /64) are answered one at a time.
    login_failure_delay: float = 1.0
    # How new passwords are hashed (RabbitMQ's password_hashing_module): RabbitMQ's
    # rabbit_password_hashing_sha256 by default, or lapine_password_hashing_pbkdf2_sha256 (much
    # slower to guess; such hashes do not import into RabbitMQ).
    password_hashing_module: str = "rabbit_password_hashing_sha256"
    # SO_KEEPALIVE on accepted sockets (RabbitMQ's tcp_listen_options.keepalive), so that the kernel
    # finds peers that vanished without a FIN; heartbeats find the rest.
    tcp_keepalive: bool = True
    # AMQPS: a TLS listener on ssl_port starts when a certificate and its key are set (RabbitMQ's
    # ssl_options.certfile, .keyfile, .cacertfile, .verify and .fail_if_no_peer_cert).
    ssl_port: int = 5671
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_cacertfile: str = ""
    ssl_verify: str = "verify_none"  # or verify_peer: check client certificates against ssl_cacertfile
    ssl_fail_if_no_peer_cert: bool = False  # with verify_peer: refuse clients without a certificate
    # HTTPS for the management API and UI: a listener on management_ssl_port starts when a
    # certificate and its key are set (RabbitMQ's management.ssl.*); the settings mean what the
    # ssl_* ones mean. management_port = -1 turns plain HTTP off and leaves HTTPS on.
    management_ssl_port: int = 15671
    management_ssl_certfile: str = ""
    management_ssl_keyfile: str = ""
    management_ssl_cacertfile: str = ""
    management_ssl_verify: str = "verify_none"
    management_ssl_fail_if_no_peer_cert: bool = False
    # Seconds an HTTP socket (management, Prometheus) may take to send a whole request head, from
    # connecting or from its previous answer, before it is closed (cowboy's request_timeout).
    http_request_timeout: float = 20.0
    # HTTP sockets open before anyone logged in on them, per source address (16 times as many in all).
    http_max_unauthenticated: int = 64
    # MQTT (RabbitMQ's MQTT and Web MQTT plugins, built in): a listener on mqtt_port, MQTT over TLS
    # on mqtt_ssl_port when the ssl_* certificate is set, MQTT over WebSocket on web_mqtt_port
    # (path /ws). Port 0 picks a free port; a negative port turns that listener off.
    mqtt_port: int = 1883
    mqtt_ssl_port: int = 8883
    web_mqtt_port: int = 15675
    web_mqtt_ssl_port: int = 15676  # MQTT over secure WebSocket, with the same ssl_* certificate
    # RabbitMQ's mqtt.* settings and defaults: the vhost of users named without one ("vhost:user"
    # names it), the exchange MQTT publishes to and subscribes through, anonymous logins (as
    # mqtt_default_user), unacknowledged QoS 1 deliveries per subscriber, the longest session
    # expiry in seconds (also a 3.1.1 persistent session's), packet size limits before and after
    # CONNECT, and the topic aliases an MQTT 5 client may set.
    mqtt_vhost: str = "/"
    mqtt_exchange: str = "amq.topic"
    mqtt_allow_anonymous: bool = True
    mqtt_default_user: str = "guest"
    mqtt_default_pass: str = "guest"
    mqtt_prefetch: int = 10
    mqtt_max_session_expiry_interval: int = 86400
    mqtt_max_packet_size_unauthenticated: int = 65536
    mqtt_max_packet_size_authenticated: int = 16 * 1024 * 1024
    mqtt_topic_alias_maximum: int = 16

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def update(self, values: dict[str, Any]) -> None:
        """Apply settings by name, converting each to the field's type; unknown names are an error."""
        kinds = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        for name, value in values.items():
            key = name.replace("-", "_")
            if key not in kinds:
                raise ValueError(f"unknown setting '{name}'")
            setattr(self, key, _convert(kinds[key], value))

    def update_from_env(self, environ: dict[str, str] | None = None) -> None:
        """LAPINE_PORT, LAPINE_DATA_DIR, ...: one variable per setting."""
        environ = dict(os.environ) if environ is None else environ
        found = {}
        for name in self.field_names():
            value = environ.get(f"LAPINE_{name.upper()}")
            if value is not None:
                found[name] = value
        self.update(found)

    def update_from_file(self, path: str | Path) -> None:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        # Accept both a flat file and one with a [lapine] table.
        self.update(data.get("lapine", data))


def _convert(kind: type, value: Any) -> Any:
    """A setting's value as its field's type; bool("false") would be True, so booleans are parsed."""
    if kind is str and isinstance(value, list):
        # A TOML list, e.g. management_allowed_hosts = ["broker.example", "mq.example"].
        return ",".join(str(item) for item in value)
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: '{value}'")
    return kind(value)
