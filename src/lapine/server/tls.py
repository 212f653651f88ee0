"""AMQPS: the TLS context of the amqps listener, from RabbitMQ's ssl_options.

``ssl_verify`` and ``ssl_fail_if_no_peer_cert`` mean what RabbitMQ's ``ssl_options.verify`` and
``ssl_options.fail_if_no_peer_cert`` mean:

* ``verify_none``: no client certificate is asked for;
* ``verify_peer``: a client certificate is asked for and, when one is sent, it must chain up to
  ``ssl_cacertfile``; a client without one is let in unless ``ssl_fail_if_no_peer_cert`` is set,
  in which case the TLS handshake fails.
"""

from __future__ import annotations

import ssl

from lapine.config import Config

VERIFY_MODES = ("verify_none", "verify_peer")


def enabled(config: Config) -> bool:
    """RabbitMQ starts its TLS listener when it is configured; here, when there is a certificate."""
    return bool(config.ssl_certfile and config.ssl_keyfile)


def server_context(config: Config) -> ssl.SSLContext:
    """The listener's context; raises ValueError for a setting that makes no sense and OSError or
    ssl.SSLError for files that cannot be read, so that a broken setup stops the start."""
    return context_for(
        config.ssl_certfile,
        config.ssl_keyfile,
        config.ssl_cacertfile,
        config.ssl_verify,
        config.ssl_fail_if_no_peer_cert,
    )


def context_for(
    certfile: str, keyfile: str, cacertfile: str, verify: str, fail_if_no_peer_cert: bool, prefix: str = "ssl_"
) -> ssl.SSLContext:
    """A server context from RabbitMQ's ssl_options; ``prefix`` names the settings in errors."""
    if verify not in VERIFY_MODES:
        raise ValueError(f"{prefix}verify must be one of {', '.join(VERIFY_MODES)}, not '{verify}'")
    verify_peer = verify == "verify_peer"
    if verify_peer and not cacertfile:
        raise ValueError(f"{prefix}verify = verify_peer needs {prefix}cacertfile to check client certificates against")
    # TLS 1.2 and later with Python's default ciphers, as RabbitMQ's defaults (no SSLv3, TLS 1.0/1.1).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if cacertfile:
        context.load_verify_locations(cafile=cacertfile)
    if not verify_peer:
        context.verify_mode = ssl.CERT_NONE
    elif fail_if_no_peer_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
