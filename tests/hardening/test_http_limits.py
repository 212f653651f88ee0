"""HTTP sockets that cannot hurt the loop: a deadline for request heads, a cap on sockets before
login, Prometheus answers rendered at most once per interval, and HTTPS for the management API."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import urllib.request

import pytest

from lapine.broker.broker import Broker
from lapine.broker.scheduler import ManualScheduler
from lapine.prometheus import per_object
from lapine.prometheus.app import RENDERED
from lapine.testing import BrokerThread
from tests.hardening.certs import Certificates, make_certificates
from tests.hardening.conftest import StartBroker
from tests.management.client import Http

AUTHORIZED = "Authorization: Basic " + base64.b64encode(b"guest:guest").decode()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _closed_by_broker(sock: socket.socket) -> bool:
    """True when the broker closes the socket (EOF or reset) before the 10 s timeout."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _management_port(broker: BrokerThread) -> int:
    assert broker.server is not None and broker.server.management_port is not None
    return broker.server.management_port


def _prometheus_port(broker: BrokerThread) -> int:
    assert broker.server is not None and broker.server.prometheus_port is not None
    return broker.server.prometheus_port


def test_a_request_head_sent_too_slowly_is_dropped(start_broker: StartBroker) -> None:
    broker = start_broker(management_port=0, prometheus_port=0, http_request_timeout=0.5)
    for port in (_management_port(broker), _prometheus_port(broker)):
        with _connect(port) as slow:
            slow.sendall(b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
            assert _closed_by_broker(slow)
    # A whole request is answered, and the socket then waits for the next one as long again.
    with _connect(_management_port(broker)) as quick:
        quick.sendall(f"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTHORIZED}\r\n\r\n".encode())
        assert quick.recv(12) == b"HTTP/1.1 200"
        assert _closed_by_broker(quick)


def test_sockets_before_login_are_capped_per_source(start_broker: StartBroker) -> None:
    broker = start_broker(management_port=0, prometheus_port=0, http_max_unauthenticated=3)
    port = _management_port(broker)
    idle = [_connect(port) for _ in range(3)]
    try:
        with _connect(port) as one_too_many:
            assert _closed_by_broker(one_too_many)
        # A socket that logs in no longer counts: there is room for another.
        idle[0].sendall(f"GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTHORIZED}\r\n\r\n".encode())
        assert idle[0].recv(12) == b"HTTP/1.1 200"
        with _connect(port) as another:
            another.sendall(b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert another.recv(12) == b"HTTP/1.1 401"
        # Another address has its own allowance.
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as other:
            other.sendall(b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert other.recv(12) == b"HTTP/1.1 401"
        # Prometheus has no login: every socket counts.
        scrapers = [_connect(_prometheus_port(broker)) for _ in range(3)]
        with _connect(_prometheus_port(broker)) as one_too_many:
            assert _closed_by_broker(one_too_many)
        for scraper in scrapers:
            scraper.close()
    finally:
        for sock in idle:
            sock.close()


def _scrape(broker: BrokerThread, path: str) -> str:
    with urllib.request.urlopen(broker.prometheus_url + path, timeout=10) as response:
        return response.read().decode()


def test_prometheus_renders_at_most_once_per_interval(start_broker: StartBroker) -> None:
    broker = start_broker(management_port=0, prometheus_port=0, prometheus_cache_ttl=600)
    api = Http(broker.management_url)
    before = _scrape(broker, "/metrics/per-object")
    api.put("/api/queues/%2F/late", {"durable": False})
    for _ in range(5):
        assert _scrape(broker, "/metrics/per-object") == before
    assert 'queue="late"' not in before
    assert broker.server is not None
    prometheus = broker.server.http.prometheus
    assert prometheus is not None
    assert prometheus.app[RENDERED].renders == 1
    fresh = start_broker(management_port=0, prometheus_port=0, prometheus_cache_ttl=0)
    Http(fresh.management_url).put("/api/queues/%2F/late", {"durable": False})
    _scrape(fresh, "/metrics/per-object")
    assert 'queue="late"' in _scrape(fresh, "/metrics/per-object")


async def test_per_object_rendering_gives_the_loop_back() -> None:
    """Thousands of queues are rendered in slices: other work on the loop runs in between."""
    broker = Broker(scheduler=ManualScheduler())
    vhost = broker.vhosts["/"]
    for n in range(per_object.SLICE * 3):
        vhost.declare_queue(f"q{n}", None, durable=False)
    finished: list[str] = []

    async def render() -> None:
        await per_object.render_per_object(broker)
        finished.append("render")

    async def other_client() -> None:
        finished.append("other")

    rendering = asyncio.ensure_future(render())
    await asyncio.sleep(0)  # the rendering starts and reaches its first slice
    await other_client()
    await rendering
    assert finished == ["other", "render"]
    assert 'rabbitmq_queue_messages_ready{vhost="/",queue="q1499"} 0' in await per_object.render_per_object(broker)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_management_over_https(start_broker: StartBroker, certs: Certificates) -> None:
    broker = start_broker(
        management_port=0,
        management_ssl_port=0,
        management_ssl_certfile=str(certs.server.cert),
        management_ssl_keyfile=str(certs.server.key),
    )
    assert broker.server is not None
    port = broker.server.http.management_ssl_port
    assert port is not None and port != broker.server.management_port
    context = ssl.create_default_context(cafile=str(certs.ca))
    request = urllib.request.Request(f"https://localhost:{port}/api/whoami")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status == 200
    # The plain listener is still there (management_port = -1 turns it off).
    assert Http(broker.management_url).get("/api/whoami").status == 200
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        context.wrap_socket(raw, server_hostname="wrong.example")


def test_https_alone(start_broker: StartBroker, certs: Certificates) -> None:
    broker = start_broker(
        management_port=-1,
        management_ssl_port=0,
        management_ssl_certfile=str(certs.server.cert),
        management_ssl_keyfile=str(certs.server.key),
    )
    assert broker.server is not None
    assert broker.server.management_port is None
    assert broker.server.http.management_ssl_port is not None


def test_bad_https_settings_stop_the_start(certs: Certificates) -> None:
    settings = {
        "management_ssl_certfile": str(certs.server.cert),
        "management_ssl_keyfile": str(certs.server.key),
        "management_ssl_verify": "verify_peer",
    }
    with pytest.raises(ValueError, match="management_ssl_verify = verify_peer needs management_ssl_cacertfile"):
        BrokerThread(prometheus_port=-1, **settings).start()
